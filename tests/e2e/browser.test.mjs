// The demo page in a real browser: two headless Chromium pages sign in, chat with each
// other through the official browser bundle, and see each other typing. A screenshot is
// kept as a test artifact in target/e2e-artifacts/.
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
});
