// Package protocol is the task protocol spoken between a worker and a task
// process: Airflow's Task SDK framing, its message types, and the two body
// codecs (msgpack and JSON).
//
// # Framing
//
// Every frame is a 4-byte big-endian body length followed by the body.
// ReadFrame checks the length against a maximum (MaxFrameSizeDefault unless
// told otherwise) before it allocates anything, so a corrupt or hostile header
// costs nothing.
//
// # Bodies
//
// A request (task → worker) is the array [id, msg]; a response (worker →
// task) is [id, msg, error], where error is nil or an ErrorResponse map and
// msg may be nil. Readers accept a response without its trailing error, and a
// request with a nil third element. msg is a map whose "type" field names the
// message (TypeGetVariable, ...). The task numbers its requests from 1; the
// worker answers each with the same id and sends nothing unasked except
// StartupDetails, with id 0, first.
//
// # Auth
//
// Before anything else, the runtime sends one auth frame (Auth, AuthFrame):
// a frame whose body is JSON whatever the codec, {"type":"Auth","secret":…},
// with the secret the worker gave it in EnvCommSecret; every log connection
// likewise starts with a LogStreamHeader line carrying it. The worker sends
// nothing on, and reads nothing more from, a connection that does not present
// it (ReadAuth compares in constant time).
//
// The body encoding is fixed per connection: msgpack (CodecMsgpack, the zero
// value and default, as in Airflow) or JSON (CodecJSON, for runtimes without a
// msgpack library). Both encode the structs of this package by their
// msgpack/json tags (the same names), maps with sorted keys, so a message
// encodes to the same bytes every time; protocol/testdata holds golden frames
// of every message in both codecs for other-language SDKs to test against.
//
// Decoding is strict about shape and lenient about content: it rejects a
// wrong array length, a non-integer id, a msg that is not a map, a missing or
// unknown type, a field of the wrong type and trailing bytes, and it ignores
// map fields it does not know (so newer peers may add fields). Values typed
// any (XCom values, kwargs, params, extras) decode to plain JSON-like Go
// values whichever the codec: nil, bool, int64 (integers), float64 (other
// numbers), string, []any and map[string]any. JSON does not tell 1.0 from 1,
// so there any number with an integral value in the int64 range is an int64;
// msgpack keeps its floats. A msgpack bin decodes to []byte and a msgpack
// timestamp to an RFC 3339 string; other msgpack extensions and non-string
// map keys are rejected. Times are RFC 3339 strings on the wire. Decoding
// errors wrap ErrMalformedFrame or ErrUnknownMessageType; no input makes the
// decoders panic.
//
// # Airflow's dialect
//
// The worker's "airflow" runtime runs Airflow's own task runner, which
// speaks Airflow's variant of these frames (airflow.go): requests and
// responses are always three-element arrays, bodies are maps in the order
// of Airflow's pydantic models, times are msgpack timestamps and timedeltas
// ISO 8601 strings. DecodeAirflowRequest and DecodeAirflowResponse keep the
// tree (Map, Timestamp) so a frame re-encodes byte for byte;
// testdata/airflow holds frames made by the real, pinned Task SDK (gen.py).
package protocol
