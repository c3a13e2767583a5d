package dag

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"
)

// Marshal encodes the record for KV. It writes the JSON by hand — the
// same document encoding/json would write, tasks in key order — because a
// fan-in rewrites the record once per batch of ends and the reflective
// encoder (sorting a thousand map keys each time) was most of that cost.
func (r *Run) Marshal() ([]byte, error) {
	b := make([]byte, 0, 256+len(r.Tasks)*48)
	b = append(b, `{"dag_id":`...)
	b = appendString(b, r.DagID)
	b = append(b, `,"run_id":`...)
	b = appendString(b, r.RunID)
	b = append(b, `,"dag_version":`...)
	b = strconv.AppendInt(b, int64(r.DagVersion), 10)
	b = append(b, `,"run_type":`...)
	b = appendString(b, r.RunType)
	b = append(b, `,"state":`...)
	b = appendString(b, string(r.State))
	b = appendTime(append(b, `,"logical_date":`...), r.LogicalDate)
	if len(r.Conf) > 0 {
		c, err := json.Marshal(r.Conf)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"conf":`...), c...)
	}
	b = appendTime(append(b, `,"queued_at":`...), r.QueuedAt)
	if r.StartDate != nil {
		b = appendTime(append(b, `,"start_date":`...), *r.StartDate)
	}
	if r.EndDate != nil {
		b = appendTime(append(b, `,"end_date":`...), *r.EndDate)
	}
	b = appendTime(append(b, `,"updated_at":`...), r.UpdatedAt)
	if r.Clears != 0 {
		b = strconv.AppendInt(append(b, `,"clears":`...), int64(r.Clears), 10)
	}
	b = append(b, `,"tasks":{`...)
	ids := make([]string, 0, len(r.Tasks))
	for id := range r.Tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		tr := r.Tasks[id]
		b = append(appendString(b, id), ':', '{')
		if tr.Expanded {
			b = append(b, `"x":true,`...)
		}
		if len(tr.Skips) > 0 {
			sk, err := json.Marshal(tr.Skips)
			if err != nil {
				return nil, err
			}
			b = append(append(append(b, `"sk":`...), sk...), ',')
		}
		b = append(b, `"i":[`...)
		for j, in := range tr.Instances {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(append(b, `{"m":`...), int64(in.MapIndex), 10)
			if in.State != "" {
				b = appendString(append(b, `,"s":`...), string(in.State))
			}
			if in.Gen != 0 {
				b = strconv.AppendInt(append(b, `,"g":`...), int64(in.Gen), 10)
			}
			if in.Try != 0 {
				b = strconv.AppendInt(append(b, `,"t":`...), int64(in.Try), 10)
			}
			if in.Reason != "" {
				b = appendString(append(b, `,"r":`...), in.Reason)
			}
			if in.Param != nil {
				p, err := json.Marshal(in.Param)
				if err != nil {
					return nil, err
				}
				b = append(append(b, `,"p":`...), p...)
			}
			b = append(b, '}')
		}
		b = append(b, ']', '}')
	}
	b = append(b, '}', '}')
	return b, nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString appends s as a JSON string: plain ASCII as is, anything
// else through encoding/json (escapes, UTF-8 checks).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
