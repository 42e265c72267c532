package sandbox

import (
	"maps"
	"slices"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/schema"
)

// brigEnv is the environment brig gives every job (docs/design.md §5): its
// credential and key, and where its sandbox holds the gateway socket and
// the Python client.
func brigEnv(work *schema.Work) map[string]string {
	return map[string]string{
		"BRIG_TOKEN":   work.Token,
		"BRIG_GATEWAY": gateway.Socket,
		"BRIG_JOB_ID":  work.Job.ID,
		"PYTHONPATH":   PythonPath,
	}
}

// initRequest is what the init needs to run the job. brigEnv is added last
// and wins, but PYTHONPATH keeps what the function or job put after it.
func initRequest(work *schema.Work, brigEnv map[string]string) *initproto.Request {
	job, spec := &work.Job, &work.Spec
	files := maps.Clone(job.Files)
	if files == nil {
		files = map[string]string{}
	}
	if job.Code != "" {
		files[spec.CodeFile] = job.Code
	}
	if len(job.Args) > 0 {
		files["args.json"] = string(job.Args)
	}
	env := map[string]string{}
	maps.Copy(env, spec.Env)
	maps.Copy(env, job.Env)
	for k, v := range brigEnv {
		if k == "PYTHONPATH" && env[k] != "" {
			v += ":" + env[k]
		}
		env[k] = v
	}
	envList := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}
	var nproc int64
	if spec.Runtime == schema.RuntimeRunsc {
		// Per sandbox under gVisor; under runc RLIMIT_NPROC would count uid
		// 65534 across every container of the host, so the pids cgroup does it.
		nproc = spec.Limits.Pids
	}
	return &initproto.Request{
		NProc:          nproc,
		Command:        spec.Command,
		Env:            envList,
		Dir:            schema.WorkDir,
		Files:          files,
		Stdin:          job.Stdin,
		OutputLimit:    spec.Limits.OutputBytes,
		ResultPath:     schema.WorkDir + "/" + schema.ResultFile,
		ResultMaxBytes: schema.MaxResultBytes,
	}
}
