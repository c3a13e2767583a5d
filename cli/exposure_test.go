package cli

import (
	"strings"
	"testing"
)

func TestExposureProblems(t *testing.T) {
	tests := []struct {
		name string
		e    exposure
		want []string // a substring of each problem, in order
	}{
		{"loopback_open", exposure{listen: "127.0.0.1:8080", natsListen: "127.0.0.1:4222", embedded: true}, nil},
		{"localhost_and_v6", exposure{listen: "localhost:8080", natsListen: "[::1]:4222", embedded: true}, nil},
		{"api_all_interfaces", exposure{listen: "0.0.0.0:8080", natsListen: "127.0.0.1:4222", embedded: true}, []string{"--operator-token"}},
		{"api_empty_host", exposure{listen: ":8080"}, []string{"--operator-token"}},
		{"api_with_token", exposure{listen: "0.0.0.0:8080", operatorToken: true}, nil},
		{"nats_open", exposure{listen: "127.0.0.1:8080", natsListen: "10.0.0.5:4222", embedded: true}, []string{"--nats-user"}},
		{"nats_with_user", exposure{listen: "127.0.0.1:8080", natsListen: "0.0.0.0:4222", embedded: true, natsUser: true}, nil},
		{"external_nats_not_ours", exposure{listen: "127.0.0.1:8080", natsListen: "0.0.0.0:4222"}, nil},
		{"both", exposure{listen: "[::]:8080", natsListen: "0.0.0.0:4222", embedded: true}, []string{"--operator-token", "--nats-user"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.e.problems()
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to name %s", i, got[i], w)
				}
			}
		})
	}
}
