// Prints the notepack.io encodings pinned in src/proto/tests.rs: `node gen-fixtures.js`.
const msgpack = require("notepack.io");
const show = (name, v) => console.log(name, msgpack.encode(v).toString("hex"));
show("broadcast", ["uid123", { type: 2, data: ["ev", 1, "s", Buffer.from([1, 2, 3]), { a: 1.5 }], nsp: "/" }, { rooms: ["r1"], except: ["x"], flags: { volatile: true } }]);
show("emitter", ["emitter", { type: 2, data: ["ev", -200], nsp: "/" }, { rooms: [42], flags: {}, except: [] }]);
show("request", { uid: "uid123", requestId: "req1", type: 7, packet: { type: 2, data: ["ev"], nsp: "/" }, opts: { rooms: [], except: [], flags: { timeout: 5000 } } });
show("ack", { type: 9, requestId: "req1", packet: "ok" });
show("ack_undefined", { type: 9, requestId: "req1", packet: undefined });
show("date", ["d", { type: 2, data: ["ev", new Date(1609459200123)], nsp: "/" }, { rooms: [], except: [], flags: {} }]);
