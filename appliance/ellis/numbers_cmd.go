package ellis

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// NumberCreator adds numbers to the pool. *Server is one; the stillwater
// command, which reaches a node over its admin API, can wrap that call in a
// CreateNumbersFunc.
type NumberCreator interface {
	CreateNumbers(ctx context.Context, start, count int64, pstn bool, realm string) (created, present int, err error)
}

// CreateNumbersFunc adapts a function to NumberCreator.
type CreateNumbersFunc func(ctx context.Context, start, count int64, pstn bool, realm string) (created, present int, err error)

// CreateNumbers implements NumberCreator.
func (f CreateNumbersFunc) CreateNumbers(ctx context.Context, start, count int64, pstn bool, realm string) (int, int, error) {
	return f(ctx, start, count, pstn, realm)
}

// Clearwater's create_numbers defaults.
const (
	defaultStart     = 6505550000
	defaultPSTNStart = 5108580271
)

const numbersUsage = `usage: stillwater numbers create [--start N] [--count M] [--pstn] [--realm R]

Adds numbers to Ellis's pool: sip:<N>@<R>, or sip:+1<N>@<R> with --pstn.
Numbers already in the pool are left as they are, so it is safe to re-run.

  -s, --start N   first number (default 6505550000, or 5108580271 with --pstn)
  -c, --count M   how many numbers (default 1)
  -p, --pstn      PSTN numbers
  -r, --realm R   domain and digest realm of the numbers (default the home domain)
`

// NumbersCommand runs `stillwater numbers <args>`; args start with the
// subcommand ("create"). It prints "Created M numbers, K already present".
func NumbersCommand(ctx context.Context, args []string, stdout io.Writer, pool NumberCreator) error {
	if len(args) == 0 {
		return errors.New(numbersUsage)
	}
	switch args[0] {
	case "create":
	case "-h", "--help", "help":
		io.WriteString(stdout, numbersUsage)
		return nil
	default:
		return fmt.Errorf("unknown numbers command %q\n%s", args[0], numbersUsage)
	}
	fs := flag.NewFlagSet("numbers create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		start int64 = -1
		count int64 = 1
		pstn  bool
		realm string
	)
	for _, n := range []string{"start", "s"} {
		fs.Int64Var(&start, n, -1, "")
	}
	for _, n := range []string{"count", "c"} {
		fs.Int64Var(&count, n, 1, "")
	}
	for _, n := range []string{"pstn", "p"} {
		fs.BoolVar(&pstn, n, false, "")
	}
	for _, n := range []string{"realm", "r"} {
		fs.StringVar(&realm, n, "", "")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, numbersUsage)
			return nil
		}
		return fmt.Errorf("numbers create: %w\n%s", err, numbersUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("numbers create: unexpected arguments %s\n%s", strings.Join(fs.Args(), " "), numbersUsage)
	}
	if start < 0 {
		start = defaultStart
		if pstn {
			start = defaultPSTNStart
		}
	}
	if count < 1 {
		return fmt.Errorf("numbers create: --count must be at least 1, not %d", count)
	}
	created, present, err := pool.CreateNumbers(ctx, start, count, pstn, realm)
	if err != nil {
		return fmt.Errorf("numbers create: %w (created %d, %d already present before the failure)", err, created, present)
	}
	fmt.Fprintf(stdout, "Created %d numbers, %d already present\n", created, present)
	return nil
}
