"""Connection recovery with python-socketio: a client whose connection dropped comes back
with `auth.recover` and gets its rooms and exactly the messages it missed."""

import socket
import threading
import time
import uuid

import pytest
import socketio

from conftest import running_node

WAIT = 5
USERS = ("alice", "bob")


@pytest.fixture
def node():
    """A single node without Redis on a fresh SQLite file, with users alice and bob."""
    with running_node(USERS) as url:
        yield url


class Member:
    """A python-socketio client on `/` that records the events it receives.

    The synchronous client runs each event handler on its own thread, so the order in
    which handlers record events is not the order of arrival: messages are compared by
    their offsets.
    """

    def __init__(self, url, login, recover=None, reconnect=False):
        self.events = []
        self.changed = threading.Condition()
        self.login = login
        self.sio = socketio.Client(reconnection=reconnect, reconnection_delay=0.5, reconnection_delay_max=1)
        for name in ("recovery", "incomingMessage", "ds invalidate", "error"):
            self.sio.on(name, self._recorder(name))
        auth = {"login": login, "password": f"{login}-pw"}
        if recover is not None:
            auth["recover"] = recover
        # A reconnecting client computes its credentials on each connect, as docs/recovery.md shows.
        self.sio.connect(url, auth=self.auth if reconnect else auth, transports=["websocket"], wait_timeout=WAIT)

    def auth(self):
        """Login, plus the last recovery token and the furthest offset seen per room."""
        creds = {"login": self.login, "password": f"{self.login}-pw"}
        with self.changed:
            recoveries = self.named("recovery")
            if recoveries:
                rooms = {}
                for message in self.named("incomingMessage"):
                    known = rooms.get(message["room"])
                    if known is None or message["offset"] > known["offset"]:
                        rooms[message["room"]] = {"offset": message["offset"], "epoch": message["epoch"]}
                creds["recover"] = {"token": recoveries[-1]["token"], "rooms": rooms}
        return creds

    def _recorder(self, name):
        def record(data=None):
            with self.changed:
                self.events.append((name, data))
                self.changed.notify_all()
        return record

    def received(self, name, count):
        """The first `count` events `name` (bounded wait), sorted by offset if they have one."""
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.named(name)) >= count, timeout=WAIT)
            got = self.named(name)
        assert ok, f"{count} {name} expected within {WAIT} s, got {got}"
        return sorted(got[:count], key=lambda d: d.get("offset", 0) if isinstance(d, dict) else 0)

    def named(self, name):
        return [data for got, data in self.events if got == name]

    def call(self, event, data):
        return self.sio.call(event, data, timeout=WAIT)

    def say(self, room, message):
        reply = self.call("sendMessage", {"room": room, "message": message})
        assert reply["ok"] is True, reply
        return reply["id"]


def test_recovers_the_missed_messages_after_a_drop(node):
    room = f"py-{uuid.uuid4().hex[:8]}"
    alice, bob = Member(node, "alice"), Member(node, "bob")
    try:
        [first] = alice.received("recovery", 1)
        assert first["recovered"] is False and first["rooms"] == {} and "reason" not in first
        joined = alice.call("join room", room)
        assert joined["ok"] is True and joined["offset"] == 0, joined
        assert bob.call("join room", room)["ok"] is True

        seen_id = bob.say(room, "seen")
        [seen] = alice.received("incomingMessage", 1)
        assert seen["id"] == seen_id and seen["offset"] == 1 and seen["epoch"] == joined["epoch"], seen

        # The network goes away: the TCP connection ends without a WebSocket close frame.
        alice.sio.eio.ws.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + WAIT
        while alice.sio.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alice.sio.connected

        for i in range(3):
            bob.say(room, f"missed {i}")
        missed = bob.received("incomingMessage", 4)[1:]

        back = Member(node, "alice", recover={
            "token": first["token"],
            "rooms": {room: {"offset": seen["offset"], "epoch": seen["epoch"]}},
        })
        try:
            [recovery] = back.received("recovery", 1)
            assert recovery["recovered"] is True, recovery
            assert recovery["token"] != first["token"]
            assert recovery["rooms"] == {
                room: {"recovered": True, "epoch": joined["epoch"], "offset": 4, "replayed": 3},
            }
            assert back.received("incomingMessage", 3) == missed, "exactly the missed messages"
            bob.say(room, "after")
            live = bob.received("incomingMessage", 5)[-1]
            got = back.received("incomingMessage", 4)
            assert got == missed + [live], "then the live one"
            assert [m["offset"] for m in got] == [2, 3, 4, 5]
            time.sleep(0.2)
            assert len(back.named("incomingMessage")) == 4, "each once"
            rooms = back.call("request", {"uuid": uuid.uuid4().hex, "route": "rooms.list"})
            assert rooms["result"] == {"rooms": [room]}
        finally:
            back.sio.disconnect()
    finally:
        alice.sio.disconnect()
        bob.sio.disconnect()


def test_reconnects_by_itself_and_recovers(node):
    """The documented python-socketio way: `auth` as a callable, automatic reconnection."""
    room = f"py-{uuid.uuid4().hex[:8]}"
    alice, bob = Member(node, "alice", reconnect=True), Member(node, "bob")
    try:
        assert alice.call("join room", room)["ok"] is True
        assert bob.call("join room", room)["ok"] is True
        for i in range(2):
            bob.say(room, f"seen {i}")
        seen = alice.received("incomingMessage", 2)

        alice.sio.eio.ws.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + WAIT
        while alice.sio.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(3):
            bob.say(room, f"missed {i}")

        # python-socketio reconnects by itself and asks for the recovery.
        recovery = alice.received("recovery", 2)[1]
        assert recovery["recovered"] is True, recovery
        assert recovery["rooms"][room]["replayed"] == 3, recovery
        sent = bob.received("incomingMessage", 5)
        assert alice.received("incomingMessage", 5) == sent, "exactly the missed messages, each once"
        assert [m["offset"] for m in seen] == [1, 2]
    finally:
        alice.sio.disconnect()
        bob.sio.disconnect()
