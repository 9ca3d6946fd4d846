// The peer for scripts/bench --peer benthos: Benthos's own CLI with only the core components the pipeline
// uses, plus one knob the stock CLI lacks. Go's HTTP client keeps only 2 idle connections per host by default,
// so at 64 requests in flight it opens and closes connections all the time; BENCH_IDLE_CONNS_PER_HOST raises
// that pool (the "idle pool 64" runs) and, when unset, the stock transport is measured.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"

	// file input and output, http_client output.
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	// json_schema processor, switch output, drop output.
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func main() {
	if raw := os.Getenv("BENCH_IDLE_CONNS_PER_HOST"); raw != "" {
		idle, err := strconv.Atoi(raw)
		if err != nil || idle < 1 {
			fmt.Fprintf(os.Stderr, "BENCH_IDLE_CONNS_PER_HOST=%q is not a positive integer\n", raw)
			os.Exit(2)
		}
		transport := http.DefaultTransport.(*http.Transport)
		transport.MaxIdleConnsPerHost = idle
		transport.MaxIdleConns = max(transport.MaxIdleConns, idle)
	}
	service.RunCLI(context.Background())
}
