// Command featured is the feature store's one binary: the server
// (`featured serve`) and the client commands that talk to a running server
// (`apply`, `plan`, `get`, `push`, `delete`, `registry`, `status`), and
// `import feast`, which turns a Feast registry into definitions offline.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "featured:", err)
		os.Exit(1)
	}
}
