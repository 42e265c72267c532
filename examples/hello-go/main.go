// Command hello-go runs one python job on brig from Go, over NATS, with
// the same token the HTTP API takes (README: Over HTTP).
package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

func main() {
	ctx := context.Background()
	server := cmp.Or(os.Getenv("BRIG_SERVER"), "nats://127.0.0.1:4222")
	c, err := sdk.Connect(ctx, server, sdk.WithToken(os.Getenv("BRIG_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `print("hello from brig")`})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
}
