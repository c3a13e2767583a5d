package protocol

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAirflowGoldenFrames decodes every frame the real Task SDK encoded
// (testdata/airflow, made by gen.py with the pinned apache-airflow-task-sdk)
// and re-encodes it byte for byte.
func TestAirflowGoldenFrames(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "airflow", "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 46 {
		t.Fatalf("%d golden frames in testdata/airflow, want the 46 gen.py writes", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bin")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var again []byte
			if strings.HasPrefix(name, "req_") {
				req, err := DecodeAirflowRequest(body)
				if err != nil {
					t.Fatal(err)
				}
				want := strings.TrimSuffix(strings.TrimPrefix(name, "req_"), "_carrier")
				if want == "TaskStateSkipped" {
					want = "TaskState"
				}
				if req.Body.Type() != want {
					t.Errorf("type %q, want %q", req.Body.Type(), want)
				}
				if !req.HasCarrier || (req.Carrier != nil) != strings.HasSuffix(name, "_carrier") {
					t.Errorf("carrier = %v, %#v", req.HasCarrier, req.Carrier)
				}
				again, err = EncodeAirflowRequest(req)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				resp, err := DecodeAirflowResponse(body)
				if err != nil {
					t.Fatal(err)
				}
				again, err = EncodeAirflowResponse(resp)
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(again, body) {
				t.Errorf("re-encoded differently:\n got %x\nwant %x", again, body)
			}
		})
	}
}

// TestAirflowGoldenContent checks what the decoder reads from a few frames.
func TestAirflowGoldenContent(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "airflow", name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	resp, err := DecodeAirflowResponse(read("resp_StartupDetails"))
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := resp.Body.Get("ti")
	if m, ok := ti.(Map); !ok || m.Str("dag_version_id") != "0195b3c2-0000-7000-8000-000000000001" {
		t.Errorf("ti = %#v", ti)
	}
	sd, _ := resp.Body.Get("start_date")
	if tm, ok := ParseAirflowTime(sd); !ok || !tm.Equal(time.Date(2026, 11, 22, 8, 15, 30, 123456000, time.UTC)) {
		t.Errorf("start_date = %#v", sd)
	}
	req, err := DecodeAirflowRequest(read("req_DeferTask"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := ParseAirflowDuration(req.Body.Str("trigger_timeout")); err != nil || d != time.Hour+5*time.Second {
		t.Errorf("trigger_timeout %q = %v, %v; want 1h0m5s", req.Body.Str("trigger_timeout"), d, err)
	}
	for in, want := range map[string]time.Duration{"P1DT2H3M4.5S": 26*time.Hour + 3*time.Minute + 4500*time.Millisecond, "-PT5S": -5 * time.Second, "PT0S": 0} {
		if d, err := ParseAirflowDuration(in); err != nil || d != want {
			t.Errorf("ParseAirflowDuration(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "5S", "PT5X", "P1H", "PTT1S"} {
		if _, err := ParseAirflowDuration(in); err == nil {
			t.Errorf("ParseAirflowDuration(%q) accepted", in)
		}
	}
	if none, err := DecodeAirflowResponse(read("resp_none")); err != nil || none.Body != nil || none.Error != nil || none.ID != 10 {
		t.Errorf("resp_none = %+v, %v", none, err)
	}
	mask, err := DecodeAirflowRequest(read("req_MaskSecret"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := mask.Body.Get("value"); Plain(v).(map[string]any)["token"] != "s3cret" {
		t.Errorf("MaskSecret value = %#v", v)
	}
}

func TestAirflowDecodeRejects(t *testing.T) {
	for name, body := range map[string][]byte{
		"empty":          {},
		"not array":      {0xa1, 'x'},
		"one element":    {0x91, 0x01},
		"four elements":  {0x94, 0x01, 0x80, 0xc0, 0xc0},
		"nil body":       {0x92, 0x01, 0xc0},
		"body not a map": {0x92, 0x01, 0x01},
		"no type":        {0x92, 0x01, 0x80},
		"type not str":   {0x92, 0x01, 0x81, 0xa4, 't', 'y', 'p', 'e', 0x01},
		"carrier int":    {0x93, 0x01, 0x81, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0x01},
		"trailing":       {0x92, 0x01, 0x81, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0x00},
	} {
		if _, err := DecodeAirflowRequest(body); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeAirflowRequest(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "airflow", "*.bin"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, err := DecodeAirflowRequest(body); err == nil {
			b, err := EncodeAirflowRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeAirflowRequest(b); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
		}
		if resp, err := DecodeAirflowResponse(body); err == nil {
			if _, err := EncodeAirflowResponse(resp); err != nil {
				t.Fatal(err)
			}
		}
	})
}
