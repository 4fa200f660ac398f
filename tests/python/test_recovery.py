"""Connection recovery with python-socketio: a client whose connection dropped comes back
with `auth.recover` and gets its rooms and exactly the messages it missed."""

import json
import os
import queue
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import socketio

from conftest import BIN

WAIT = 5
USERS = ("alice", "bob")


@pytest.fixture
def node():
    """A single node without Redis on a fresh SQLite file, with users alice and bob."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_") and k != "REDIS_URL"}
        env.update(
            DATABASE_URL=f"sqlite://{tmp}/roomcast.db",
            ROOMCAST_LISTEN="127.0.0.1:0",
            ROOMCAST_LOG_FORMAT="json",
        )
        proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            url = None
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("roomcast exited before listening")
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("message") == "listening":
                    url = "http://" + record["addr"]
            assert url, "roomcast did not listen within 20 s"
            for user in USERS:
                subprocess.run(
                    [BIN, "user", "add", user, "--password", f"{user}-pw"],
                    env=env, check=True, capture_output=True, timeout=30,
                )
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


class Member:
    """A python-socketio client on `/` that queues the events it receives.

    The synchronous client runs each event handler on its own thread, so the order of
    the queue is not the order of arrival: messages are compared by their offsets.
    """

    def __init__(self, url, login, recover=None):
        self.events = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in ("recovery", "incomingMessage", "ds invalidate", "error"):
            self.sio.on(name, self._recorder(name))
        auth = {"login": login, "password": f"{login}-pw"}
        if recover is not None:
            auth["recover"] = recover
        self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=WAIT)

    def _recorder(self, name):
        return lambda data=None: self.events.put((name, data))

    def expect(self, name):
        got, data = self.events.get(timeout=WAIT)
        assert got == name, f"expected {name}, got {got} {data}"
        return data

    def messages_until(self, message_id):
        """The incomingMessage payloads received up to and including `message_id`."""
        out = []
        while not out or out[-1]["id"] != message_id:
            out.append(self.expect("incomingMessage"))
        return out

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
        first = alice.expect("recovery")
        assert first["recovered"] is False and first["rooms"] == {} and "reason" not in first
        bob.expect("recovery")
        joined = alice.call("join room", room)
        assert joined["ok"] is True and joined["offset"] == 0, joined
        assert bob.call("join room", room)["ok"] is True

        seen_id = bob.say(room, "seen")
        seen = alice.messages_until(seen_id)[-1]
        assert seen["offset"] == 1 and seen["epoch"] == joined["epoch"]
        bob.messages_until(seen_id)

        # The network goes away: the TCP connection ends without a WebSocket close frame.
        alice.sio.eio.ws.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + WAIT
        while alice.sio.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alice.sio.connected

        missed = [bob.say(room, f"missed {i}") for i in range(3)]
        sent = bob.messages_until(missed[-1])

        back = Member(node, "alice", recover={
            "token": first["token"],
            "rooms": {room: {"offset": seen["offset"], "epoch": seen["epoch"]}},
        })
        try:
            recovery = back.expect("recovery")
            assert recovery["recovered"] is True, recovery
            assert recovery["token"] != first["token"]
            assert recovery["rooms"][room] == {
                "recovered": True, "epoch": joined["epoch"], "offset": 4, "replayed": 3,
            }
            after_id = bob.say(room, "after")
            got = []
            while len(got) < 4:
                got.append(back.expect("incomingMessage"))
            got.sort(key=lambda m: m["offset"])
            live = bob.messages_until(after_id)[-1]
            assert got == sent + [live], "exactly the missed messages, then the live one"
            assert [m["offset"] for m in got] == [2, 3, 4, 5]
            assert back.call("request", {"uuid": uuid.uuid4().hex, "route": "rooms.list"})["result"] == {"rooms": [room]}
        finally:
            back.sio.disconnect()
    finally:
        alice.sio.disconnect()
        bob.sio.disconnect()
