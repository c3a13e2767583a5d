package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/flagenv"
)

// apiURLDefault is where the CLI finds the executor when neither --api-url
// nor TASKWIRE_API_URL says otherwise.
const apiURLDefault = "http://127.0.0.1:8080"

// newFlagSet returns a flag set printing to c.stderr with usage text u
// before the flags.
func (c *cli) newFlagSet(name, u string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), u)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// applyEnv sets the flags of fs not in given from the TASKWIRE_* variable
// their help names (see flagenv.Apply).
func (c *cli) applyEnv(fs *flag.FlagSet, given map[string]bool) error {
	return flagenv.Apply(fs, given, c.lookupEnv)
}

// parse parses args, which may mix flags and positional arguments ("get ID
// --json"; a "--" ends the flags), then applies the environment. It returns
// the positional arguments and the names of the flags given on the command
// line.
func (c *cli) parse(fs *flag.FlagSet, args []string) (pos []string, given map[string]bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, usageErr(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	given, err = c.afterParse(fs)
	return pos, given, err
}

// parseHead parses flags up to the first positional argument (or "--"),
// the rest being positional: a command and its own arguments.
func (c *cli) parseHead(fs *flag.FlagSet, args []string) (pos []string, given map[string]bool, err error) {
	if err := fs.Parse(args); err != nil {
		return nil, nil, usageErr(err)
	}
	given, err = c.afterParse(fs)
	return fs.Args(), given, err
}

// afterParse applies the environment to the flags not given.
func (c *cli) afterParse(fs *flag.FlagSet) (map[string]bool, error) {
	given := flagenv.Given(fs)
	if err := c.applyEnv(fs, given); err != nil {
		return nil, usageErr(err)
	}
	return given, nil
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, args []string, names ...string) error {
	if len(args) != len(names) {
		return usagef("%s: want %d argument(s) %s, got %d: %q", fs.Name(), len(names), strings.Join(names, " "), len(args), args)
	}
	return nil
}

// settingsVerb reads the positional arguments of a settings command
// (pools, limits): "[list]", "set NAME" or "delete NAME", NAME checked by
// valid. It returns the verb and NAME ("" for list).
func settingsVerb(fs *flag.FlagSet, pos []string, arg string, valid func(string) error) (verb, name string, err error) {
	verb = "list"
	if len(pos) > 0 {
		verb, pos = pos[0], pos[1:]
	}
	switch verb {
	case "list":
		return verb, "", wantArgs(fs, pos)
	case "set", "delete":
		if err := wantArgs(fs, pos, arg); err != nil {
			return "", "", err
		}
		if err := valid(pos[0]); err != nil {
			return "", "", usagef("%s %s: %v", fs.Name(), verb, err)
		}
		return verb, pos[0], nil
	}
	return "", "", usagef("%s: unknown subcommand %q (want list, set or delete)", fs.Name(), verb)
}

// apiFlags are the flags of every command that calls the public API.
type apiFlags struct {
	url, token, ca string
	json           bool
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api-url", apiURLDefault, "executor URL (TASKWIRE_API_URL)")
	fs.StringVar(&a.token, "token", "", "operator token of the public API (TASKWIRE_OPERATOR_TOKEN)")
	fs.StringVar(&a.ca, "api-ca", "", "PEM file of the CA that signed the executor's https certificate (TASKWIRE_API_CA)")
	fs.BoolVar(&a.json, "json", false, "print JSON instead of a table (TASKWIRE_JSON)")
}

func (a *apiFlags) client() (*client.Client, error) {
	tc, err := flagenv.ClientTLS(a.ca)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--api-ca: %w", err))
	}
	c, err := client.New(client.Config{URL: a.url, Token: a.token, TLSConfig: tc})
	if err != nil {
		return nil, usageErr(fmt.Errorf("--api-url: %w", err))
	}
	return c, nil
}

// apiCommand parses args of a command with the API flags a registered in
// fs, checks its positional arguments against names, and returns them with
// a client of the public API.
func (c *cli) apiCommand(fs *flag.FlagSet, a *apiFlags, args []string, names ...string) (*client.Client, []string, error) {
	pos, _, err := c.parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if err := wantArgs(fs, pos, names...); err != nil {
		return nil, nil, err
	}
	api, err := a.client()
	return api, pos, err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// newTable returns a tabwriter for aligned columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated row, replacing tabs and newlines inside cells.
func row(w io.Writer, cells ...string) {
	for i, s := range cells {
		cells[i] = strings.NewReplacer("\t", " ", "\n", `\n`, "\r", "").Replace(s)
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
