package activity

// RateLimit bounds the requests polling triggers make under one rate key
// (an http trigger's rate_key, by default its URL's host), across every
// triggerer of the cluster.
type RateLimit struct {
	Key string `json:"key"`
	// RPS is the requests per second allowed (a token bucket of one
	// token: requests are spaced 1/RPS apart).
	RPS float64 `json:"rps"`
	// Concurrent, when positive, bounds the requests in flight.
	Concurrent int `json:"concurrent,omitempty"`
}

// ValidateRateKey checks a rate key: 1-250 characters of
// [A-Za-z0-9_.:@-] (a host, host:port, or a name).
func ValidateRateKey(key string) error {
	if !onlyOf(key, 250, func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '@' || c == '-'
	}) {
		return invalid("rate key %q must be 1-250 characters of [A-Za-z0-9_.:@-]", CutValue(key))
	}
	return nil
}
