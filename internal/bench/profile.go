package bench

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

// Profile is where cmd/bench writes a CPU profile, and of what.
type Profile struct {
	// File receives the profile; none when empty.
	File string
	// Phase, when set, is the one throughput phase profiled (e.g.
	// "command tasks", "warm Go SDK tasks"); else the whole run.
	Phase string
}

// ProfileFlags registers --cpuprofile and --cpuprofile-phase on fs.
func ProfileFlags(fs *flag.FlagSet, p *Profile) {
	fs.StringVar(&p.File, "cpuprofile", "", "write a CPU profile of the whole run (cluster included) to `FILE`")
	fs.StringVar(&p.Phase, "cpuprofile-phase", "", "with --cpuprofile, profile only the throughput phase of this `NAME` (e.g. \"command tasks\", \"warm Go SDK tasks\")")
}

// Start starts the profile of the whole run, or sets cfg.OnThroughput to
// profile p.Phase; the returned stop ends it and closes the file, and
// says when no phase of that name ran (the file is then empty).
func (p Profile) Start(cfg *Config) (stop func() error, err error) {
	if p.File == "" {
		if p.Phase != "" {
			return nil, fmt.Errorf("%w: --cpuprofile-phase needs --cpuprofile", ErrConfig)
		}
		return func() error { return nil }, nil
	}
	f, err := os.Create(p.File)
	if err != nil {
		return nil, err
	}
	if p.Phase == "" {
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
	}
	ran := false
	cfg.OnThroughput = func(name string) func() {
		if name != p.Phase || pprof.StartCPUProfile(f) != nil {
			return func() {}
		}
		ran = true
		return pprof.StopCPUProfile
	}
	return func() error {
		if err := f.Close(); err != nil {
			return err
		}
		if !ran {
			return fmt.Errorf("--cpuprofile-phase %q: no throughput phase of that name ran; %s is empty", p.Phase, p.File)
		}
		return nil
	}, nil
}
