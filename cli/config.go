package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/taskwire/taskwire/activity"
)

const variablesUsage = `usage: executor variables list [flags]
       executor variables get KEY [flags]
       executor variables set KEY VALUE [--description D] [flags]
       executor variables delete KEY [flags]

Manages the variables tasks read (GetVariable). "get" prints the value alone
(--json the whole variable); "set" reads VALUE from stdin when it is "-".
`

func (c *cli) variables(ctx context.Context, args []string) error {
	sub, rest, err := subcommand(c, "variables", variablesUsage, args, "list", "get", "set", "delete")
	if err != nil {
		return err
	}
	fs := c.newFlagSet("variables "+sub, variablesUsage)
	var a apiFlags
	a.register(fs)
	var desc *string
	if sub == "set" {
		desc = fs.String("description", "", "what the variable is for")
	}
	pos, _, err := c.parse(fs, rest)
	if err != nil {
		return err
	}
	names := map[string][]string{"list": nil, "get": {"KEY"}, "set": {"KEY", "VALUE"}, "delete": {"KEY"}}[sub]
	if err := wantArgs(fs, pos, names...); err != nil {
		return err
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		vs, err := api.Variables(ctx)
		if err != nil {
			return err
		}
		if a.json {
			if vs == nil {
				vs = []activity.Variable{}
			}
			return printJSON(c.stdout, map[string]any{"variables": vs})
		}
		tw := newTable(c.stdout)
		row(tw, "KEY", "VALUE", "DESCRIPTION")
		for _, v := range vs {
			row(tw, v.Key, truncate(v.Value, 60), v.Description)
		}
		return tw.Flush()
	case "get":
		v, err := api.Variable(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, v)
		}
		_, err = fmt.Fprintln(c.stdout, v.Value)
		return err
	case "set":
		value := pos[1]
		if value == "-" {
			b, err := io.ReadAll(io.LimitReader(c.stdin, 1<<20))
			if err != nil {
				return fmt.Errorf("read the value from stdin: %w", err)
			}
			value = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
		v, err := api.SetVariable(ctx, pos[0], value, *desc)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, v)
		}
		fmt.Fprintf(c.stdout, "variable %s set\n", v.Key)
		return nil
	default: // delete
		if err := api.DeleteVariable(ctx, pos[0]); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(c.stdout, "variable %s deleted\n", pos[0])
		}
		return nil
	}
}

const connectionsUsage = `usage: executor connections list [flags]
       executor connections get ID [flags]
       executor connections set ID --type T [--host H] [--port P] [--login L]
                                [--password P] [--schema S] [--extra JSON] [flags]
       executor connections delete ID [flags]

Manages the connections tasks read (GetConnection). "set" replaces the whole
connection: a field not given is stored empty. Passwords are shown as "***".
Give the password through TASKWIRE_CONN_PASSWORD to keep it out of the
process list.
`

func (c *cli) connections(ctx context.Context, args []string) error {
	sub, rest, err := subcommand(c, "connections", connectionsUsage, args, "list", "get", "set", "delete")
	if err != nil {
		return err
	}
	fs := c.newFlagSet("connections "+sub, connectionsUsage)
	var a apiFlags
	a.register(fs)
	var conn activity.Connection
	var extra string
	if sub == "set" {
		fs.StringVar(&conn.ConnType, "type", "", "connection type, e.g. postgres, http (required)")
		fs.StringVar(&conn.Host, "host", "", "host")
		fs.IntVar(&conn.Port, "port", 0, "port")
		fs.StringVar(&conn.Login, "login", "", "login")
		fs.StringVar(&conn.Password, "password", "", "password (TASKWIRE_CONN_PASSWORD)")
		fs.StringVar(&conn.Schema, "schema", "", "schema")
		fs.StringVar(&extra, "extra", "", "extra fields as a `JSON` object, e.g. '{\"sslmode\":\"require\"}'")
	}
	pos, _, err := c.parse(fs, rest)
	if err != nil {
		return err
	}
	names := map[string][]string{"list": nil, "get": {"ID"}, "set": {"ID"}, "delete": {"ID"}}[sub]
	if err := wantArgs(fs, pos, names...); err != nil {
		return err
	}
	if sub == "set" {
		conn.ConnID = pos[0]
		if err := completeConnection(&conn, extra); err != nil {
			return err
		}
	}
	api, err := a.client()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		cs, err := api.Connections(ctx)
		if err != nil {
			return err
		}
		if a.json {
			if cs == nil {
				cs = []activity.Connection{}
			}
			return printJSON(c.stdout, map[string]any{"connections": cs})
		}
		tw := newTable(c.stdout)
		row(tw, "CONN ID", "TYPE", "HOST", "PORT", "SCHEMA", "LOGIN")
		for _, cn := range cs {
			row(tw, cn.ConnID, cn.ConnType, cn.Host, portText(cn.Port), cn.Schema, cn.Login)
		}
		return tw.Flush()
	case "get":
		cn, err := api.Connection(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, cn)
		}
		tw := newTable(c.stdout)
		row(tw, "CONN ID", cn.ConnID)
		row(tw, "TYPE", cn.ConnType)
		row(tw, "HOST", cn.Host)
		row(tw, "PORT", portText(cn.Port))
		row(tw, "SCHEMA", cn.Schema)
		row(tw, "LOGIN", cn.Login)
		row(tw, "PASSWORD", cn.Password)
		ex := ""
		if len(cn.Extra) > 0 {
			b, _ := json.Marshal(cn.Extra)
			ex = string(b)
		}
		row(tw, "EXTRA", ex)
		return tw.Flush()
	case "set":
		cn, err := api.SetConnection(ctx, conn)
		if err != nil {
			return err
		}
		if a.json {
			return printJSON(c.stdout, cn)
		}
		fmt.Fprintf(c.stdout, "connection %s set\n", cn.ConnID)
		return nil
	default: // delete
		if err := api.DeleteConnection(ctx, pos[0]); err != nil {
			return err
		}
		if !a.json {
			fmt.Fprintf(c.stdout, "connection %s deleted\n", pos[0])
		}
		return nil
	}
}

// completeConnection checks the flags of connections set and decodes
// --extra into conn.
func completeConnection(conn *activity.Connection, extra string) error {
	if conn.ConnType == "" {
		return usagef("connections set: --type is required")
	}
	if conn.Port < 0 || conn.Port > 65535 {
		return usagef("connections set: --port %d: want 0-65535", conn.Port)
	}
	if extra != "" {
		if err := json.Unmarshal([]byte(extra), &conn.Extra); err != nil || conn.Extra == nil {
			return usagef("connections set: --extra: want a JSON object, got %q", extra)
		}
	}
	return nil
}

// subcommand takes the subcommand off args: one of subs, else a usage error
// (-h prints the usage and is no error).
func subcommand(c *cli, group, u string, args []string, subs ...string) (string, []string, error) {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, u)
		return "", nil, usagef("%s: want a subcommand: %s", group, strings.Join(subs, ", "))
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, u)
		return "", nil, flag.ErrHelp
	}
	for _, s := range subs {
		if s == args[0] {
			return s, args[1:], nil
		}
	}
	return "", nil, usageErr(errors.New(group + ": unknown subcommand " + strconv.Quote(args[0]) + "; want " + strings.Join(subs, ", ")))
}

func portText(p int) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(p)
}

// truncate shortens s to n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
