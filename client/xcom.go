package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// XCom returns the value of an XCom of task taskID in DAG run dagID/runID
// (map index -1), decoded from JSON; ErrNotFound when there is none.
func (c *Client) XCom(ctx context.Context, dagID, runID, taskID, key string) (any, error) {
	var parts []string
	for _, p := range [][2]string{{"dag id", dagID}, {"run id", runID}, {"task id", taskID}, {"xcom key", key}} {
		e, err := pathID(p[0], p[1])
		if err != nil {
			return nil, fmt.Errorf("get xcom: %w", err)
		}
		parts = append(parts, e)
	}
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	q := url.Values{"map_index": {strconv.Itoa(-1)}}
	if err := c.do(ctx, http.MethodGet, "/xcoms/"+parts[0]+"/"+parts[1]+"/"+parts[2]+"/"+parts[3], q, nil, &out); err != nil {
		return nil, fmt.Errorf("get xcom %s of %s/%s/%s: %w", key, dagID, runID, taskID, err)
	}
	var v any
	if err := json.Unmarshal(out.Value, &v); err != nil {
		return nil, fmt.Errorf("get xcom %s: decode: %w", key, err)
	}
	return v, nil
}
