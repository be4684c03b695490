// SPDX-License-Identifier: Apache-2.0
//
// ateom-go-client calls the ateom service with grpc-go, the stack atelet
// uses, so tests can check the C server against an independent client.
// It prints one JSON object: {"code":"OK","message":"","response":{...},
// "elapsed_ms":N} and exits 0 whenever the call completed (whatever its
// status); exit 1 means the client itself failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	pb "github.com/agent-substrate/substrate/internal/proto/ateompb"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	socket := flag.String("socket", "", "server socket path")
	method := flag.String("method", "health", "run, checkpoint, restore, health or a full /pkg.Svc/Method path (raw empty message)")
	ns := flag.String("namespace", "", "actor_template_namespace")
	tmpl := flag.String("template", "", "actor_template_name")
	actor := flag.String("actor", "", "actor_id")
	timeout := flag.Duration("timeout", 30*time.Second, "call deadline (0 = none)")
	var containers, assets, readyz multi
	flag.Var(&containers, "container", "container name (repeatable)")
	flag.Var(&assets, "asset", "NAME=PATH runtime asset (repeatable)")
	flag.Var(&readyz, "readyz", "NAME:PORT[:PATH] readiness probe (repeatable)")
	flag.Parse()

	conn, err := grpc.Dial("unix://"+*socket, grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx := context.Background()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}

	spec := &pb.WorkloadSpec{}
	for _, c := range containers {
		spec.Containers = append(spec.Containers, &pb.Container{Name: c})
	}
	for _, r := range readyz {
		parts := strings.SplitN(r, ":", 3)
		port, _ := strconv.Atoi(parts[1])
		path := ""
		if len(parts) == 3 {
			path = parts[2]
		}
		for _, c := range spec.Containers {
			if c.Name == parts[0] {
				c.Readyz = &pb.Readyz{HttpGet: &pb.HTTPGetAction{Path: path, Port: int32(port)}}
			}
		}
	}
	assetMap := map[string]string{}
	for _, a := range assets {
		kv := strings.SplitN(a, "=", 2)
		if len(kv) == 2 {
			assetMap[kv[0]] = kv[1]
		}
	}

	client := pb.NewAteomClient(conn)
	start := time.Now()
	var resp interface{}
	switch *method {
	case "run":
		resp, err = client.RunWorkload(ctx, &pb.RunWorkloadRequest{
			ActorTemplateNamespace: *ns, ActorTemplateName: *tmpl, ActorId: *actor,
			Spec: spec, RuntimeAssetPaths: assetMap})
	case "checkpoint":
		resp, err = client.CheckpointWorkload(ctx, &pb.CheckpointWorkloadRequest{
			ActorTemplateNamespace: *ns, ActorTemplateName: *tmpl, ActorId: *actor,
			Spec: spec, RuntimeAssetPaths: assetMap})
	case "restore":
		resp, err = client.RestoreWorkload(ctx, &pb.RestoreWorkloadRequest{
			ActorTemplateNamespace: *ns, ActorTemplateName: *tmpl, ActorId: *actor,
			Spec: spec, RuntimeAssetPaths: assetMap})
	case "health":
		var h *healthpb.HealthCheckResponse
		h, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			resp = map[string]string{"status": h.Status.String()}
		}
	default:
		out := &pb.RunWorkloadResponse{}
		err = conn.Invoke(ctx, *method, &pb.RunWorkloadResponse{}, out)
		resp = out
	}
	st, _ := status.FromError(err)
	out := map[string]interface{}{
		"code":       st.Code().String(),
		"message":    st.Message(),
		"elapsed_ms": float64(time.Since(start).Microseconds()) / 1000,
	}
	if err == nil {
		out["response"] = resp
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}
