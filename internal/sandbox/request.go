package sandbox

import (
	"maps"
	"path"
	"regexp"
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

// initRequest is what the init needs to run the job.
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
	envList := jobEnv(spec.Env, job.Env, brigEnv)
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

// jobEnv is a job's environment, sorted: the function's, then the job's,
// then brigEnv, which wins, but PYTHONPATH keeps what the function or job
// put after it.
func jobEnv(fnEnv, env, brigEnv map[string]string) []string {
	merged := map[string]string{}
	maps.Copy(merged, fnEnv)
	maps.Copy(merged, env)
	for k, v := range brigEnv {
		if k == "PYTHONPATH" && merged[k] != "" {
			v += ":" + merged[k]
		}
		merged[k] = v
	}
	list := make([]string, 0, len(merged))
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		list = append(list, k+"="+merged[k])
	}
	return list
}

// noZygoteEnv are the start-up variables under which an interpreter
// started before its job shows it: what the preload imported, allocated
// or printed (import times, tracemalloc, verbose imports, allocator and
// reference statistics at exit), or a prompt after the driver's -c
// (inspect). A function whose env sets one gets no zygote; a job that
// sets one differs from its function's start-up variables and gets a
// plain exec anyway (docs/design.md §5.1).
var noZygoteEnv = []string{"PYTHONINSPECT", "PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC", "PYTHONVERBOSE",
	"PYTHONDEVMODE", "PYTHONMALLOCSTATS", "PYTHONDUMPREFS", "PYTHONSHOWREFCOUNT"}

// zygoteHeadroomMB is added to the memory limit of a container whose
// init starts a zygote: the preload's own memory (about 12 MB for the
// built-in python's 40 modules) is not the job's, and a job that fits its
// memory_mb by a plain exec must fit beside it (docs/design.md §5.1).
const zygoteHeadroomMB = 32

// pythonRe matches the interpreters the zygote's driver runs under.
var pythonRe = regexp.MustCompile(`^python3(\.[0-9]+)?$`)

// zygoteArgs are the init's --zygote flag for a prewarmed sandbox of spec
// (docs/design.md §5.1), or none: for a single-use runc function whose
// command is [python3 SCRIPT] and that asks for it. The zygote starts with
// the start-up variables every job of spec gets unless it sets them
// itself; the token and the job's own env come only with the job.
func zygoteArgs(spec schema.RunSpec) []string {
	if !spec.Zygote || !spec.SingleUse || spec.Runtime == schema.RuntimeRunsc ||
		len(spec.Command) != 2 || !path.IsAbs(spec.Command[1]) || !pythonRe.MatchString(path.Base(spec.Command[0])) {
		return nil
	}
	for _, name := range noZygoteEnv {
		if _, ok := spec.Env[name]; ok {
			return nil
		}
	}
	z := &initproto.Zygote{
		Command: spec.Command,
		Dir:     schema.WorkDir,
		Env:     initproto.StartupEnv(jobEnv(spec.Env, nil, brigEnv(&schema.Work{}))),
		Preload: spec.Preload,
	}
	arg, err := z.Encode()
	if err != nil { // a function validated by schema always encodes
		return nil
	}
	return []string{"--zygote", arg}
}
