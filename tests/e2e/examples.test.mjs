// The lobby of seed 001 and the chat and to-do examples of seed 002, on one node, with
// the official v4 client: every event and every error case. (Their cross-node behaviour
// is in cluster.test.mjs; the python-socketio flow in tests/python.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setupNode, connectClient, connectRefused, passwordOf, delay } from './lib/harness.mjs';

describe('examples on one node', { timeout: 90000 }, () => {
  let env;
  const clients = [];
  const open = async (path, creds = {}) => {
    const c = await connectClient('v4-websocket', `${env.url}${path}`, creds);
    clients.push(c);
    return c;
  };
  const failsWith = async (client, event, args, message) => {
    client.send(event, ...args);
    assert.deepEqual(await client.waitFor('error'), { message }, `${event} ${JSON.stringify(args)}`);
  };

  before(async () => { env = await setupNode('sqlite'); });
  after(async () => {
    for (const c of clients) c.close();
    await env?.teardown();
  });

  it('lobby: every error case answers `error {message}` and changes nothing', async () => {
    const host = await open('/lobby');
    const other = await open('/lobby');
    await failsWith(host, 'create_session', [{ type: 'default', ph_users: 0 }], 'Not logged in');
    await failsWith(host, 'join_session', ['ABCDEFGH'], 'Not logged in');
    await failsWith(host, 'proccess_check', [], 'Not logged in');
    await failsWith(host, 'logout', [], 'Not logged in');
    await failsWith(host, 'login', ['Hana'], 'Bad payload: expected {"name": "..."}');
    await failsWith(host, 'login', [{ name: '' }], 'Bad payload: expected {"name": "..."}');
    await failsWith(host, 'no_such_event', [], 'Unknown event');

    host.send('login', { name: 'Hana' });
    assert.deepEqual(await host.waitFor('login_success'), { message: 'You are connected!', name: 'Hana', type: 'USER' });
    await failsWith(host, 'login', [{ name: 'Again' }], 'Already logged in');
    await failsWith(host, 'create_session', [{ type: 'ranked', ph_users: 0 }], 'Unsupported session type: only "default"');
    await failsWith(host, 'create_session', [{ type: 'default', ph_users: 2 }], 'ph_users must be 0');
    await failsWith(host, 'create_session', ['default'], 'Unsupported session type: only "default"');
    await failsWith(host, 'proccess_check', [], 'Only the host can start the session');

    host.send('create_session', { type: 'default', ph_users: 0 });
    const { message, session_key } = await host.waitFor('send_session_key');
    assert.equal(message, 'Session created!');
    assert.match(session_key, /^[A-Z2-9]{8}$/);
    await failsWith(host, 'create_session', [{ type: 'default', ph_users: 0 }], 'Already in a session');
    await failsWith(host, 'join_session', [session_key], 'Already in a session');

    other.send('login', { name: 'Carl' });
    await other.waitFor('login_success');
    await failsWith(other, 'join_session', ['NOSUCHKY'], 'Session not found');
    await failsWith(other, 'join_session', [{ key: session_key }], 'Bad payload: expected the session key');
    other.send('join_session', session_key);
    for (const c of [host, other]) {
      assert.deepEqual(await c.waitFor('user_connected'), { message: 'User connected!', name: 'Carl' });
    }
    await failsWith(other, 'proccess_check', [], 'Only the host can start the session');
    host.send('proccess_check');
    for (const c of [host, other]) {
      assert.deepEqual(await c.waitFor('session_started'), { message: 'Session started!', session_key });
    }
    await failsWith(host, 'proccess_check', [], 'Session already started');

    const late = await open('/lobby');
    late.send('login', { name: 'Late' });
    await late.waitFor('login_success');
    await failsWith(late, 'join_session', [session_key], 'Session already started');

    // A client leaving tells the others; the host leaving closes the session.
    other.send('logout');
    assert.deepEqual(await other.waitFor('logout_success'), { message: 'You are disconnected!' });
    assert.deepEqual(await host.waitFor('user_disconnected'), { message: 'User disconnected!', name: 'Carl' });
    await delay(100);
    host.assertNothing('no error or stray event');
  });

  it('lobby: a host that disconnects closes its session', async () => {
    const host = await open('/lobby');
    const guest = await open('/lobby');
    host.send('login', { name: 'H' });
    guest.send('login', { name: 'G' });
    await Promise.all([host.waitFor('login_success'), guest.waitFor('login_success')]);
    host.send('create_session', { type: 'default', ph_users: 0 });
    const { session_key } = await host.waitFor('send_session_key');
    guest.send('join_session', session_key);
    await guest.waitFor('user_connected');
    host.close();
    assert.deepEqual(await guest.waitFor('session_closed'), { message: 'Session closed!', session_key });
    // The key is gone: joining it again fails.
    guest.send('logout');
    await guest.waitFor('logout_success');
    guest.send('login', { name: 'G' });
    await guest.waitFor('login_success');
    await failsWith(guest, 'join_session', [session_key], 'Session not found');
  });

  it('chat: the guide\'s events, counts and errors', async () => {
    const ann = await open('/chat');
    const ben = await open('/chat');
    await failsWith(ann, 'new message', ['too early'], 'Add a user first');
    await failsWith(ann, 'typing', [], 'Add a user first');
    await failsWith(ann, 'add user', [42], 'Bad payload: expected a user name');
    ann.send('add user', 'ann');
    assert.deepEqual(await ann.waitFor('login'), { numUsers: 1 });
    assert.deepEqual(await ben.waitFor('user joined'), { username: 'ann', numUsers: 1 });
    ben.send('add user', 'ben');
    assert.deepEqual(await ben.waitFor('login'), { numUsers: 2 });
    assert.deepEqual(await ann.waitFor('user joined'), { username: 'ben', numUsers: 2 });
    ann.send('typing');
    assert.deepEqual(await ben.waitFor('typing'), { username: 'ann' });
    ann.send('stop typing');
    assert.deepEqual(await ben.waitFor('stop typing'), { username: 'ann' });
    ann.send('new message', 'hi ben');
    assert.deepEqual(await ben.waitFor('new message'), { username: 'ann', message: 'hi ben' });
    await failsWith(ann, 'new message', [''], 'Bad payload: expected a message of 1-4096 characters');
    ben.close();
    assert.deepEqual(await ann.waitFor('user left'), { username: 'ben', numUsers: 1 });
    await delay(100);
    ann.assertNothing('no echo of its own events');
  });

  it('todo: list, add and remove reach every client and persist', async () => {
    assert.match(await connectRefused('v4-websocket', `${env.url}/todo`, {}), /^unauthorized/);
    const a = await open('/todo', passwordOf('alice'));
    const b = await open('/todo', passwordOf('bob'));
    a.send('todo:get');
    assert.deepEqual(await a.waitFor('todos'), []);
    a.send('todo:add', { title: 'milk' });
    for (const c of [a, b]) assert.deepEqual(await c.waitFor('todos'), [{ id: 1, title: 'milk', author: 'alice' }]);
    b.send('todo:add', 'bread');
    for (const c of [a, b]) assert.equal((await c.waitFor('todos')).length, 2);
    await failsWith(a, 'todo:add', ['   '], 'Bad payload: expected a title of 1-500 characters');
    await failsWith(a, 'todo:remove', ['one'], 'Bad payload: expected an item id');
    await failsWith(a, 'todo:remove', [99], 'No such item');
    a.send('todo:remove', { id: 1 });
    for (const c of [a, b]) assert.deepEqual(await c.waitFor('todos'), [{ id: 2, title: 'bread', author: 'bob' }]);
    // Stored, not in memory: a new client reads the same list.
    const c = await open('/todo', passwordOf('carol'));
    c.send('todo:get');
    assert.deepEqual(await c.waitFor('todos'), [{ id: 2, title: 'bread', author: 'bob' }]);
  });
});
