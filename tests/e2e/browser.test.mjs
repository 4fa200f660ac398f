// The demo page in a real browser: two headless Chromium pages sign in, chat with each
// other through the official browser bundle, and see each other typing in the room
// they type in only. On a phone-sized screen Send stays visible; offline, a banner
// shows and the input is disabled; back online, the messages missed meanwhile are in
// the log, once, in order. Screenshots are kept as test artifacts in
// target/e2e-artifacts/.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { REPO, setupNode } from './lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'target', 'e2e-artifacts');
const ADMIN_TOKEN = 'browser-admin-token-0123456789';

describe('demo page in headless Chromium', { timeout: 90000 }, () => {
  let env, browser;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (scripts/test installs Debian's chromium)`);
    env = await setupNode('sqlite', { env: { ROOMCAST_ADMIN_TOKEN: ADMIN_TOKEN } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Root in a sandbox without network: no Chrome sandbox, no background traffic.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await env?.teardown();
  });

  async function signIn(login) {
    const page = await browser.newPage();
    await page.goto(env.url);
    await page.fill('#login-name', login);
    await page.fill('#login-password', `${login}-pw`);
    await page.click('#login button');
    await page.waitForSelector('#chat:not(.hidden)', { timeout: 5000 });
    return page;
  }

  it('refuses a wrong password with the server message', async () => {
    const page = await browser.newPage();
    await page.goto(env.url);
    await page.fill('#login-name', 'alice');
    await page.fill('#login-password', 'wrong');
    await page.click('#login button');
    await page.waitForSelector('#login-error:has-text("unauthorized")', { timeout: 5000 });
    await page.close();
  });

  it('lets two people chat, see who is online and who is typing', async () => {
    const alice = await signIn('alice');
    const bob = await signIn('bob');

    await alice.fill('#message', 'hello from alice');
    await alice.press('#message', 'Enter');
    await bob.waitForSelector('#messages li:has-text("hello from alice")', { timeout: 5000 });

    await bob.type('#message', 'hi alice');
    await alice.waitForSelector('#typing:has-text("bob typing")', { timeout: 5000 });
    await bob.press('#message', 'Enter');
    await alice.waitForSelector('#messages li:has-text("hi alice")', { timeout: 5000 });
    await alice.waitForSelector('#online li:has-text("bob")', { timeout: 8000 });

    // A room of their own: only its members get its messages.
    await alice.fill('#join-name', 'design');
    await alice.press('#join-name', 'Enter');
    await alice.waitForSelector('#rooms li.active:has-text("design")', { timeout: 5000 });
    await alice.fill('#message', 'design notes');
    await alice.press('#message', 'Enter');
    await alice.waitForSelector('#messages li:has-text("design notes")', { timeout: 5000 });
    await alice.waitForTimeout(300);
    assert.equal(await bob.evaluate("messagesByRoom.has('design')"), false, 'bob is not in #design');

    // An operator's notice to the lobby, through the admin API, shows on both pages.
    const notice = await fetch(`${env.url}/admin/notice`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'lobby', text: 'restart at noon' }),
    });
    assert.equal(notice.status, 200);
    for (const page of [alice, bob]) {
      await page.waitForSelector('#messages li:has-text("notice to lobby: restart at noon")', { timeout: 5000 });
    }

    mkdirSync(ARTIFACTS, { recursive: true });
    await bob.screenshot({ path: join(ARTIFACTS, 'demo-chat.png') });
    assert.ok(existsSync(join(ARTIFACTS, 'demo-chat.png')));
  });

  it('shows typing only in the room it happens in', async () => {
    const alice = await signIn('alice');
    const bob = await signIn('bob');
    for (const page of [alice, bob]) {
      await page.fill('#join-name', 'standup');
      await page.press('#join-name', 'Enter');
      await page.waitForSelector('#rooms li.active:has-text("standup")', { timeout: 5000 });
    }
    // Bob looks at the lobby while alice types in #standup.
    await bob.click('#rooms li:has-text("lobby")');
    await bob.waitForSelector('#rooms li.active:has-text("lobby")', { timeout: 5000 });
    await alice.type('#message', 'about the release');
    await alice.waitForTimeout(500);
    assert.equal(await bob.textContent('#typing'), '', 'typing in #standup is not shown in #lobby');
    await alice.type('#message', ' today');
    await bob.click('#rooms li:has-text("standup")');
    await bob.waitForSelector('#typing:has-text("alice typing")', { timeout: 5000 });
    await alice.close();
    await bob.close();
  });

  it('on a phone, after a network drop: a banner while away, then the missed messages', async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const bob = await env.connect('v4-websocket', { login: 'bob', password: 'bob-pw' });
    try {
      await page.goto(env.url);
      await page.fill('#login-name', 'alice');
      await page.fill('#login-password', 'alice-pw');
      await page.click('#login button');
      const room = `away-${Date.now()}`;
      await page.fill('#join-name', room);
      await page.press('#join-name', 'Enter');
      await page.waitForSelector(`#rooms li.active:has-text("${room}")`, { timeout: 5000 });
      assert.equal((await bob.ack('join room', room)).ok, true);
      const say = async (message) => assert.equal((await bob.ack('sendMessage', { room, message })).ok, true);
      await say('before the drop');
      await page.waitForSelector('#messages li:has-text("before the drop")', { timeout: 5000 });

      // The network goes away: the connection drops and reconnecting fails until it is back.
      await page.context().setOffline(true);
      await page.evaluate(() => workspace.io.engine.close());
      await page.waitForSelector('#offline:not(.hidden)', { timeout: 5000 });
      await say('missed one');
      await say('missed two');
      await page.waitForTimeout(1500);
      assert.ok(await page.isVisible('#offline'), 'still offline');
      assert.equal(await page.locator('#messages li:has-text("missed")').count(), 0);

      await page.context().setOffline(false);
      await page.waitForSelector('#offline', { state: 'hidden', timeout: 10000 });
      await page.waitForSelector('#messages li:has-text("missed two")', { timeout: 5000 });
      await say('after the return');
      await page.waitForSelector('#messages li:has-text("after the return")', { timeout: 5000 });
      const log = await page.locator('#messages li').allTextContents();
      const from = log.findIndex((l) => l.includes('before the drop'));
      assert.deepEqual(
        log.slice(from).map((l) => l.replace(/\d{1,2}:\d{2}:\d{2}.*$/, '')),
        ['bobbefore the drop', '2 missed messages recovered', 'bobmissed one', 'bobmissed two', 'bobafter the return'],
      );
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 390, 'no sideways scrolling');
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'demo-chat-phone-recovered.png') });
    } finally {
      bob.close();
      await page.close();
    }
  });

  it('says so when the history no longer covers the time away, and shows the latest messages', async () => {
    const own = await setupNode('sqlite', { users: ['alice', 'bob'], env: { ROOMCAST_HISTORY_SIZE: '2' } });
    const page = await browser.newPage();
    const bob = await own.connect('v4-websocket', { login: 'bob', password: 'bob-pw' });
    try {
      await page.goto(own.url);
      await page.fill('#login-name', 'alice');
      await page.fill('#login-password', 'alice-pw');
      await page.click('#login button');
      await page.waitForSelector('#rooms li.active:has-text("lobby")', { timeout: 5000 });
      assert.equal((await bob.ack('join room', 'lobby')).ok, true);
      const say = async (message) => assert.equal((await bob.ack('sendMessage', { room: 'lobby', message })).ok, true);
      await say('seen');
      await page.waitForSelector('#messages li:has-text("seen")', { timeout: 5000 });

      await page.context().setOffline(true);
      await page.evaluate(() => workspace.io.engine.close());
      await page.waitForSelector('#offline:not(.hidden)', { timeout: 5000 });
      // Three messages while away; the room keeps the last two only.
      for (const message of ['gone', 'kept one', 'kept two']) await say(message);
      await page.context().setOffline(false);
      await page.waitForSelector('#offline', { state: 'hidden', timeout: 10000 });
      await page.waitForSelector('#messages li:has-text("kept two")', { timeout: 5000 });
      const log = (await page.locator('#messages li').allTextContents()).map((l) => l.replace(/\d{1,2}:\d{2}:\d{2}.*$/, ''));
      assert.deepEqual(log, [
        'bobseen',
        'history lost (gap_too_large): some messages sent while you were offline are missing; the latest follow',
        'bobkept one',
        'bobkept two',
      ]);
    } finally {
      await page.close();
      await own.teardown();
    }
  });

  it('fits a 390 px wide phone: Send visible, a banner and a disabled input while offline', async () => {
    const own = await setupNode('sqlite', { users: ['erin'] });
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      await page.goto(own.url);
      await page.fill('#login-name', 'erin');
      await page.fill('#login-password', 'erin-pw');
      await page.click('#login button');
      await page.waitForSelector('#chat:not(.hidden)', { timeout: 5000 });
      await page.waitForSelector('#rooms li.active:has-text("lobby")', { timeout: 5000 });
      const send = await page.locator('#send').boundingBox();
      assert.ok(send, 'Send is rendered');
      assert.ok(send.x >= 0 && send.x + send.width <= 390 && send.y + send.height <= 844, `Send at ${JSON.stringify(send)}`);
      const input = await page.locator('#message').boundingBox();
      assert.ok(input.width >= 150, `message box ${input.width} px wide`);
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth), 390, 'no sideways scrolling');
      assert.ok(await page.isHidden('#offline'));
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'demo-chat-phone.png') });

      await own.node.stop();
      await page.waitForSelector('#offline:not(.hidden)', { timeout: 10000 });
      assert.ok(await page.isDisabled('#message'));
      assert.ok(await page.isDisabled('#send'));
      assert.match(await page.textContent('#offline'), /Offline/);
      await page.screenshot({ path: join(ARTIFACTS, 'demo-chat-phone-offline.png') });
    } finally {
      await page.close();
      await own.teardown();
    }
  });
});
