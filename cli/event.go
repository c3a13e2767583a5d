package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

const eventUsage = `usage: executor event send NAME [PAYLOAD] [flags]
       executor event send NAME --file FILE [flags]

Sends the external event NAME: it fires every "event" trigger waiting on NAME
that deferred at or before the event was sent, and each resumed task gets the
payload. The executor keeps the last event of each name. NAME is 1-200
characters of [A-Za-z0-9_.:-].

PAYLOAD is taken as JSON when it is valid JSON ('{"day":"2026-11-22"}', 3,
true, '"007"'), else as a string; --file reads the payload JSON from FILE
instead ("-" reads stdin). Without either, or with an empty file, the event
has no payload. A PAYLOAD starting with "-" goes after "--".

Prints the event as the executor stored it: NAME and SENT AT, or the whole
event with --json.
`

// maxPayloadFile bounds a --file payload (the executor has its own, usually
// smaller, limit).
const maxPayloadFile = 16 << 20

func (c *cli) event(ctx context.Context, args []string) error {
	sub, rest, err := subcommand(c, "event", eventUsage, args, "send")
	if err != nil {
		return err
	}
	fs := c.newFlagSet("event "+sub, eventUsage)
	var a apiFlags
	a.register(fs)
	file := fs.String("file", "", "read the payload JSON from `FILE`; \"-\" reads stdin")
	pos, _, err := c.parse(fs, rest)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("event send: want NAME [PAYLOAD], got %d argument(s): %q", len(pos), pos)
	}
	if len(pos) == 2 && *file != "" {
		return usagef("event send: give PAYLOAD or --file, not both")
	}
	var payload any
	switch {
	case *file != "":
		raw, err := c.readPayload(*file)
		if err != nil {
			return usageErr(err)
		}
		if raw != nil {
			payload = raw
		}
	case len(pos) == 2:
		payload = parsePayload(pos[1])
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	ev, err := api.SendEvent(ctx, pos[0], payload)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(c.stdout, ev)
	}
	tw := newTable(c.stdout)
	row(tw, "NAME", "SENT AT")
	row(tw, ev.Name, fmtTime(&ev.SentAt))
	return tw.Flush()
}

// parsePayload takes s as JSON when it is one valid JSON value, sent as
// written (numbers exact), else as a string.
func parsePayload(s string) any {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}

// readPayload reads the --file payload: JSON, or nothing (nil) when the
// file is empty or blank.
func (c *cli) readPayload(name string) (json.RawMessage, error) {
	data, err := c.readInput("--file", name, maxPayloadFile)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("--file %s: the payload is not valid JSON", name)
	}
	return data, nil
}

// readInput reads the file name, or stdin for "-", of at most max bytes;
// flag names the flag that gave it, for errors.
func (c *cli) readInput(flag, name string, max int) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = c.stdin
	} else {
		fh, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		defer fh.Close()
		r = fh
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	if len(data) > max {
		return nil, fmt.Errorf("%s %s: larger than %d bytes", flag, name, max)
	}
	return data, nil
}
