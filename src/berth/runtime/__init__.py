"""berth's OCI runtime: runs a bundle (config.json + rootfs) as a container, like runc and crun.

api        the in-process API the engine and monitor call (create/start/state/kill/delete/exec/pause/resume)
cli        `berth-runtime`, runc-compatible; commands holds one function per command
launch     Spec -> Launch: every check and computation that can fail, before anything is created
init       fork, namespaces, the init's rootfs work, privileges, exec (no import after pivot_root)
mounts     spec mounts, pivot_root, masked and read-only paths (targets opened inside the rootfs)
devices    /dev nodes, links and the console pty
caps       capability sets;  seccomp: Docker's profile and libseccomp;  users: passwd/group, never NSS
cgroups    v1 and v2 behind one interface;  devicefilter: v2 device rules as eBPF
state      state directory and status;  jsonio: JSON without the json package on the start path

Nothing is imported here, so `import berth.runtime.api` stays cheap. May import: berth.oci, berth.util, berth.errors.
"""
