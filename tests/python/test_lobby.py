"""The lobby flow of seed 001, driven by python-socketio the way the Flask clients did."""

import queue

import socketio

WAIT = 5


class Player:
    """A python-socketio client on /lobby that queues every event it receives."""

    def __init__(self, url):
        self.events = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in (
            "login_success", "logout_success", "send_session_key", "user_connected",
            "session_started", "session_closed", "user_disconnected", "error",
        ):
            self.sio.on(name, self._recorder(name), namespace="/lobby")
        self.sio.connect(url, namespaces=["/lobby"], wait_timeout=WAIT)

    def _recorder(self, name):
        return lambda data=None: self.events.put((name, data))

    def emit(self, event, data=None):
        if data is None:
            self.sio.emit(event, namespace="/lobby")
        else:
            self.sio.emit(event, data, namespace="/lobby")

    def expect(self, name):
        got, data = self.events.get(timeout=WAIT)
        assert got == name, f"expected {name}, got {got} {data}"
        return data


def test_lobby_session_from_login_to_close(node_url):
    host, guest = Player(node_url), Player(node_url)
    try:
        host.emit("create_session", {"type": "default", "ph_users": 0})
        assert host.expect("error") == {"message": "Not logged in"}

        host.emit("login", {"name": "Hana"})
        assert host.expect("login_success") == {"message": "You are connected!", "name": "Hana", "type": "USER"}
        guest.emit("login", {"name": "Carl"})
        guest.expect("login_success")

        host.emit("create_session", {"type": "default", "ph_users": 3})
        assert host.expect("error") == {"message": "ph_users must be 0"}
        host.emit("create_session", {"type": "default", "ph_users": 0})
        created = host.expect("send_session_key")
        assert created["message"] == "Session created!"
        key = created["session_key"]

        guest.emit("join_session", "NOSUCHKEY")
        assert guest.expect("error") == {"message": "Session not found"}
        guest.emit("join_session", key)
        for player in (host, guest):
            assert player.expect("user_connected") == {"message": "User connected!", "name": "Carl"}

        guest.emit("proccess_check")
        assert guest.expect("error") == {"message": "Only the host can start the session"}
        host.emit("proccess_check")
        for player in (host, guest):
            assert player.expect("session_started")["session_key"] == key

        host.emit("logout")
        assert guest.expect("session_closed") == {"message": "Session closed!", "session_key": key}
        assert host.expect("logout_success") == {"message": "You are disconnected!"}
    finally:
        host.sio.disconnect()
        guest.sio.disconnect()
