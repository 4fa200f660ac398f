// The admin API and its CLI: three nodes sharing Redis and one database, each with its
// admin API on a separate ops port. Every operation is made through one node and must
// reach sockets on the others; without the right token nothing happens.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib/harness.mjs';
import { startCluster } from './lib/cluster.mjs';

const TOKEN = 'admin-token-for-e2e-0123456789';

/** Calls the admin API; resolves {status, body} with the body parsed as JSON when it is. */
async function api(baseUrl, method, path, { token = TOKEN, body, raw } = {}) {
  const headers = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined || raw !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${baseUrl}/admin/${path}`, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    signal: AbortSignal.timeout(h.WAIT_MS),
  });
  const text = await r.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** Starts a node whose admin API listens on an ops port of its own. */
async function adminNode(db, env = {}) {
  const opsPort = await h.freePort();
  const node = await h.startNode({
    db,
    env: { ROOMCAST_ADMIN_TOKEN: TOKEN, ROOMCAST_OPS_LISTEN: `127.0.0.1:${opsPort}`, ...env },
  });
  node.ops = `http://127.0.0.1:${opsPort}`;
  return node;
}

h.notePgSkip();

for (const backend of h.backends()) {
  describe(`admin API across three nodes (${backend.name})`, { skip: backend.skip, timeout: 180000 }, () => {
    let cluster, db, nodes;
    const connect = (node, login, kind = 'v4-websocket') => cluster.connect(kind, node.url, h.passwordOf(login));
    const online = async (via) => {
      const r = await api(via.ops, 'GET', 'online/users');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return Object.fromEntries(r.body.users.map((u) => [u.user, u]));
    };

    before(async () => {
      cluster = await startCluster({
        nodes: 3,
        db: backend.name,
        start: adminNode,
        users: ['alice', 'bob', 'carol', 'dave', 'erin'],
      });
      ({ db, nodes } = cluster);
    });

    after(() => cluster?.stop());

    it('refuses requests without the token or with a wrong one, and changes nothing', async () => {
      const [a, , c] = nodes;
      const victim = await connect(c, 'erin');
      for (const token of [null, 'wrong-token-wrong-token', `${TOKEN}x`, '']) {
        for (const [method, path, body] of [
          ['GET', 'nodes'],
          ['GET', 'online/users'],
          ['GET', 'online/sockets'],
          ['POST', `online/users/erin/disconnect`],
          ['POST', `online/sockets/${victim.id}/disconnect`],
          ['POST', 'notice', { text: 'hi' }],
          ['GET', 'users'],
          ['DELETE', 'users/erin'],
          ['PUT', 'users/erin/password', { password: 'stolen' }],
        ]) {
          const r = await api(a.ops, method, path, { token, body });
          assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(token)}`);
          assert.equal(r.headers.get('www-authenticate'), 'Bearer');
        }
      }
      // A token sent some other way than Bearer is no token.
      const basic = await fetch(`${a.ops}/admin/nodes`, { headers: { authorization: `Basic ${TOKEN}` } });
      assert.equal(basic.status, 401);
      await h.delay(200);
      assert.equal(victim.connected, true, 'the socket survived the refused disconnects');
      victim.assertNothing('no notice');
      const again = await h.connectClient('v4-websocket', c.url, h.passwordOf('erin'));
      again.close();
      // The admin API is on the ops port, not on the public one.
      assert.equal((await api(a.url, 'GET', 'nodes')).status, 404);
      // The refusals were audited, without the token.
      const audit = a.logs().filter((l) => l.includes('admin request refused'));
      assert.ok(audit.length >= 9, `audit lines for refusals: ${audit.length}`);
      assert.ok(!a.logs().some((l) => l.includes(TOKEN)), 'the token never reaches the logs');
    });

    it('lists the nodes with their sockets, and who is online cluster-wide', async () => {
      const [a, b, c] = nodes;
      const aliceB = await connect(b, 'alice', 'v4-polling');
      const aliceC = await connect(c, 'alice');
      const bobA = await connect(a, 'bob', 'v2');

      const r = await api(a.ops, 'GET', 'nodes');
      assert.equal(r.status, 200);
      const ids = r.body.nodes.map((n) => n.id);
      for (const n of nodes) assert.ok(ids.includes(n.nodeId), `${n.nodeId} in ${ids}`);
      const byId = Object.fromEntries(r.body.nodes.map((n) => [n.id, n]));
      assert.ok(byId[b.nodeId].sockets >= 1 && byId[c.nodeId].sockets >= 1, JSON.stringify(r.body));
      assert.ok(Date.now() - Date.parse(byId[a.nodeId].heartbeat_at) < 60000, 'a recent heartbeat');

      // Asked of C, about sockets held by A and B.
      const users = await online(c);
      assert.equal(users.alice.sockets, 2);
      assert.deepEqual(users.alice.nodes, [b.nodeId, c.nodeId].sort());
      assert.deepEqual(users.bob.nodes, [a.nodeId]);

      const s = await api(b.ops, 'GET', 'online/sockets?user=alice');
      assert.equal(s.status, 200);
      const seen = s.body.sockets.map((x) => [x.socket, x.node, x.namespace, x.user]).sort();
      assert.deepEqual(seen, [[aliceB.id, b.nodeId, '/', 'alice'], [aliceC.id, c.nodeId, '/', 'alice']].sort());
      assert.ok(s.body.sockets.every((x) => Array.isArray(x.rooms) && typeof x.connected_at === 'string'));
      const all = await api(b.ops, 'GET', 'online/sockets?limit=1');
      assert.equal(all.body.sockets.length, 1);
      for (const bad of ['limit=0', 'limit=abc', 'limit=100001', 'colour=red']) {
        const e = await api(b.ops, 'GET', `online/sockets?${bad}`);
        assert.equal(e.status, 400, bad);
        assert.equal(typeof e.body.error, 'string', bad);
      }
      for (const x of [aliceB, aliceC, bobA]) x.close();
    });

    it('disconnects one socket on another node, and only that one', async () => {
      const [a, b, c] = nodes;
      const target = await connect(c, 'carol');
      const sibling = await connect(c, 'carol');
      const other = await connect(b, 'bob');
      // The client forgets its id once disconnected.
      const id = target.id;
      await h.waitUntil(async () => (await online(a)).carol?.sockets === 2, 'only these two carol sockets');
      const r = await api(a.ops, 'POST', `online/sockets/${id}/disconnect`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { socket: id, disconnected: 1 });
      assert.equal(await target.waitDisconnect(), 'io server disconnect');
      await h.waitUntil(async () => (await online(a)).carol?.sockets === 1, 'the row of the disconnected socket gone');
      assert.equal(sibling.connected, true);
      assert.equal(other.connected, true);
      assert.equal((await sibling.ack('join room', h.roomName())).ok, true, 'the sibling still works');

      const unknown = await api(a.ops, 'POST', 'online/sockets/no-such-socket/disconnect');
      assert.equal(unknown.status, 404);
      assert.match(unknown.body.error, /no live socket/);
      // Gone already: nothing to disconnect.
      assert.equal((await api(a.ops, 'POST', `online/sockets/${id}/disconnect`)).status, 404);
      sibling.close();
      other.close();
    });

    it('disconnects a user everywhere, every namespace, through any node', async () => {
      const [a, b, c] = nodes;
      const onC = await connect(c, 'alice');
      const onB = await connect(b, 'alice', 'v4-polling');
      const todo = await cluster.connect('v4-websocket', `${c.url}/todo`, h.passwordOf('alice'));
      // One on the node asked, too: closed there without the adapter.
      const onA = await connect(a, 'alice', 'v2');
      const bystander = await connect(c, 'bob');
      await h.waitUntil(async () => (await online(a)).alice?.sockets === 4, 'alice online four times');

      const r = await api(a.ops, 'POST', 'online/users/alice/disconnect');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { user: 'alice', disconnected: 4 });
      for (const x of [onC, onB, todo, onA]) assert.equal(await x.waitDisconnect(), 'io server disconnect');
      await h.waitUntil(async () => !(await online(b)).alice, 'alice offline everywhere');
      assert.equal(bystander.connected, true);

      // A known user with nothing online: nothing to do, not an error.
      assert.deepEqual((await api(a.ops, 'POST', 'online/users/alice/disconnect')).body, { user: 'alice', disconnected: 0 });
      const unknown = await api(a.ops, 'POST', 'online/users/nobody/disconnect');
      assert.equal(unknown.status, 404);
      assert.match(unknown.body.error, /no user/);
      bystander.close();
    });

    it('sends a notice through one node to a room spread over the others', async () => {
      const [a, b, c] = nodes;
      const room = h.roomName('notice');
      const onA = await connect(a, 'bob');
      const onB = await connect(b, 'carol');
      const onC = await connect(c, 'dave', 'v2');
      const outsider = await connect(c, 'erin');
      for (const x of [onA, onB, onC]) await h.joinRoom(x, room);

      const r = await api(a.ops, 'POST', 'notice', { body: { room, text: 'maintenance at 22:00' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      for (const x of [onA, onB, onC]) {
        const n = await x.waitFor('notice');
        assert.equal(n.text, 'maintenance at 22:00');
        assert.equal(n.room, room);
        assert.equal(typeof n.ts, 'number');
      }
      await h.settle(onC, [onA, onB], room);
      outsider.assertNothing('no notice for a socket outside the room', 'notice');

      // Without a room: every socket of the namespace, on every node.
      assert.equal((await api(b.ops, 'POST', 'notice', { body: { text: 'to all' } })).status, 200);
      for (const x of [onA, onB, onC, outsider]) {
        assert.equal((await x.waitFor('notice', (n) => n.text === 'to all')).room, null);
      }

      for (const [what, req] of [
        ['empty text', { body: { room, text: '' } }],
        ['long text', { body: { room, text: 'x'.repeat(1001) } }],
        ['no text', { body: { room } }],
        ['text not a string', { body: { room, text: 42 } }],
        ['reserved room', { body: { room: '$internal', text: 'x' } }],
        ['bad room', { body: { room: ' padded', text: 'x' } }],
        ['unknown namespace', { body: { text: 'x', namespace: '/nope' } }],
        ['unknown field', { body: { text: 'x', colour: 'red' } }],
        ['malformed JSON', { raw: '{"text": ' }],
      ]) {
        const e = await api(a.ops, 'POST', 'notice', req);
        assert.equal(e.status, 400, `${what}: ${JSON.stringify(e.body)}`);
        assert.equal(typeof e.body.error, 'string', what);
      }
      await h.settle(onC, [onA, onB], room);
      for (const x of [onA, onB, onC, outsider]) x.assertNothing('no notice from bad requests', 'notice');
      for (const x of [onA, onB, onC, outsider]) x.close();
    });

    it('lists users, changes a password and deletes a user, disconnecting them', async () => {
      const [a, b, c] = nodes;
      const listed = await api(b.ops, 'GET', 'users');
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.users.map((u) => u.login), ['alice', 'bob', 'carol', 'dave', 'erin']);
      assert.ok(listed.body.users.every((u) => !Number.isNaN(Date.parse(u.created_at)) && !('password_hash' in u)));

      const changed = await api(a.ops, 'PUT', 'users/bob/password', { body: { password: 'new-bob-pw' } });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.match(await h.connectRefused('v4-websocket', c.url, h.passwordOf('bob')), /unauthorized/);
      (await h.connectClient('v4-websocket', c.url, { login: 'bob', password: 'new-bob-pw' })).close();
      for (const [what, req, status] of [
        ['empty password', { body: { password: '' } }, 400],
        ['long password', { body: { password: 'x'.repeat(1025) } }, 400],
        ['no password', { body: {} }, 400],
        ['malformed JSON', { raw: 'password' }, 400],
      ]) {
        const e = await api(a.ops, 'PUT', 'users/bob/password', req);
        assert.equal(e.status, status, `${what}: ${JSON.stringify(e.body)}`);
      }
      (await h.connectClient('v4-websocket', b.url, { login: 'bob', password: 'new-bob-pw' })).close();
      assert.equal((await api(a.ops, 'PUT', 'users/nobody/password', { body: { password: 'x' } })).status, 404);

      const dave = await connect(c, 'dave');
      const daveToo = await connect(a, 'dave', 'v4-polling');
      const erin = await connect(c, 'erin');
      await h.waitUntil(async () => (await online(a)).dave?.sockets === 2, 'only these two dave sockets');
      const deleted = await api(b.ops, 'DELETE', 'users/dave');
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      assert.deepEqual(deleted.body, { deleted: 'dave', disconnected: 2 });
      for (const x of [dave, daveToo]) assert.equal(await x.waitDisconnect(), 'io server disconnect');
      assert.match(await h.connectRefused('v4-websocket', a.url, h.passwordOf('dave')), /unauthorized/);
      assert.equal(erin.connected, true);
      const after = await api(c.ops, 'GET', 'users');
      assert.deepEqual(after.body.users.map((u) => u.login), ['alice', 'bob', 'carol', 'erin']);
      assert.equal((await api(a.ops, 'DELETE', 'users/dave')).status, 404);
      await h.waitUntil(async () => !(await online(a)).dave, 'dave offline');
      erin.close();

      // Each action left an audit line on the node that served it.
      const audited = b.logs().filter((l) => l.includes('admin request') && l.includes('/admin/users/dave'));
      assert.ok(audited.some((l) => l.includes('DELETE') && l.includes('200')), audited.join('\n'));
    });

    it('the CLI speaks to the admin API', async () => {
      const [a, b, c] = nodes;
      const cli = (args, env = {}) => h.runCli(db, ['admin', '--url', a.ops, ...args], { env: { ROOMCAST_ADMIN_TOKEN: TOKEN, ...env } });
      const nodesOut = await cli(['nodes']);
      assert.equal(nodesOut.code, 0, nodesOut.stderr);
      const ids = JSON.parse(nodesOut.stdout).nodes.map((n) => n.id);
      for (const n of nodes) assert.ok(ids.includes(n.nodeId));

      const carol = await connect(c, 'carol');
      const room = h.roomName('cli');
      await h.joinRoom(carol, room);
      await h.waitUntil(async () => (await online(a)).carol?.sockets === 1, 'only this carol socket');
      const onlineOut = await cli(['online']);
      assert.equal(onlineOut.code, 0, onlineOut.stderr);
      assert.ok(JSON.parse(onlineOut.stdout).users.some((u) => u.user === 'carol'));
      const socketsOut = await cli(['sockets', '--user', 'carol']);
      assert.deepEqual(JSON.parse(socketsOut.stdout).sockets.map((s) => s.socket), [carol.id]);

      assert.equal((await cli(['notice', '--room', room, 'from the CLI'])).code, 0);
      assert.equal((await carol.waitFor('notice')).text, 'from the CLI');

      const disc = await cli(['disconnect-user', 'carol']);
      assert.equal(disc.code, 0, disc.stderr);
      assert.equal(JSON.parse(disc.stdout).disconnected, 1);
      assert.equal(await carol.waitDisconnect(), 'io server disconnect');

      const carol2 = await connect(b, 'carol');
      assert.equal((await cli(['disconnect-socket', carol2.id])).code, 0);
      assert.equal(await carol2.waitDisconnect(), 'io server disconnect');

      const pw = await cli(['passwd', 'erin', '--password', 'erin-new-pw']);
      assert.equal(pw.code, 0, pw.stderr);
      (await h.connectClient('v4-websocket', b.url, { login: 'erin', password: 'erin-new-pw' })).close();

      // The token from the flag wins; a wrong one is refused with the status named.
      const refused = await cli(['--token', 'wrong-token-wrong-token', 'users']);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /401/);
      const missing = await h.runCli(db, ['admin', '--url', a.ops, 'users']);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /admin token/);
      const notFound = await cli(['delete-user', 'nobody']);
      assert.notEqual(notFound.code, 0);
      assert.match(notFound.stderr, /404/);
      assert.equal((await cli(['users'])).code, 0);
    });
  });

  describe(`admin API off, and the local user commands (${backend.name})`, { skip: backend.skip, timeout: 60000 }, () => {
    it('answers 404 when no token is configured', async () => {
      const s = await h.setupNode(backend.name, { users: ['alice'] });
      try {
        for (const token of [null, TOKEN]) {
          assert.equal((await api(s.url, 'GET', 'nodes', { token })).status, 404);
          assert.equal((await api(s.url, 'POST', 'online/users/alice/disconnect', { token })).status, 404);
          assert.equal((await api(s.url, 'DELETE', 'users/alice', { token })).status, 404);
        }
        (await h.connectClient('v4-websocket', s.url, h.passwordOf('alice'))).close();
      } finally {
        await s.teardown();
      }
    });

    it('shares the main port when there is no ops port, beside working sockets', async () => {
      const s = await h.setupNode(backend.name, { users: ['alice'], env: { ROOMCAST_ADMIN_TOKEN: TOKEN } });
      try {
        const alice = await s.connect('v4-polling', h.passwordOf('alice'));
        const id = alice.id;
        assert.equal((await api(s.url, 'GET', 'nodes', { token: null })).status, 401);
        const sockets = await api(s.url, 'GET', 'online/sockets');
        assert.deepEqual(sockets.body.sockets.map((x) => x.socket), [id]);
        assert.equal((await api(s.url, 'POST', `online/sockets/${id}/disconnect`)).status, 200);
        assert.equal(await alice.waitDisconnect(), 'io server disconnect');
        assert.equal((await h.httpGet(s.url, '/readyz')).status, 200);
      } finally {
        await s.teardown();
      }
    });

    it('refuses a short token at start-up and never prints the token', async () => {
      const db = await h.createDb(backend.name);
      try {
        const short = await h.runCli(db, ['serve'], { env: { ROOMCAST_ADMIN_TOKEN: 'short-token', ROOMCAST_LISTEN: '127.0.0.1:0' } });
        assert.notEqual(short.code, 0);
        assert.match(short.stderr, /admin\.token/);
        assert.ok(!`${short.stdout}${short.stderr}`.includes('short-token'));
        const shown = await h.runCli(db, ['check-config'], { env: { ROOMCAST_ADMIN_TOKEN: TOKEN } });
        assert.equal(shown.code, 0, shown.stderr);
        assert.match(shown.stdout, /\[admin\]\s+token = "<hidden>"/);
        assert.ok(!shown.stdout.includes(TOKEN));
      } finally {
        await db.drop().catch(() => {});
      }
    });

    it('roomcast user list, passwd and delete work on the database', async () => {
      const s = await h.setupNode(backend.name, { users: ['alice', 'bob'] });
      try {
        const list = await h.runCli(s.db, ['user', 'list']);
        assert.equal(list.code, 0, list.stderr);
        assert.deepEqual(list.stdout.trim().split('\n').map((l) => l.split('\t')[0]), ['alice', 'bob']);

        const pw = await h.runCli(s.db, ['user', 'passwd', 'alice', '--password', 'alice-new']);
        assert.equal(pw.code, 0, pw.stderr);
        assert.match(await h.connectRefused('v4-websocket', s.url, h.passwordOf('alice')), /unauthorized/);
        (await h.connectClient('v4-websocket', s.url, { login: 'alice', password: 'alice-new' })).close();
        assert.notEqual((await h.runCli(s.db, ['user', 'passwd', 'nobody', '--password', 'x'])).code, 0);
        assert.notEqual((await h.runCli(s.db, ['user', 'passwd', 'bob', '--password', ''])).code, 0);

        const del = await h.runCli(s.db, ['user', 'delete', 'bob']);
        assert.equal(del.code, 0, del.stderr);
        assert.match(await h.connectRefused('v4-websocket', s.url, h.passwordOf('bob')), /unauthorized/);
        const again = await h.runCli(s.db, ['user', 'delete', 'bob']);
        assert.notEqual(again.code, 0);
        assert.match(again.stderr, /no user/);
        const left = await h.runCli(s.db, ['user', 'list']);
        assert.deepEqual(left.stdout.trim().split('\n').map((l) => l.split('\t')[0]), ['alice']);
      } finally {
        await s.teardown();
      }
    });
  });
}
