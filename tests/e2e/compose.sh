#!/usr/bin/env bash
# docker-compose.yml, checked without a container engine: what can be known on the host.
#
#   (a) `docker-compose config -q` accepts the file
#   (b) every service builds a stage that deploy/docker/Dockerfile defines, and the
#       program it runs is put there (COPY into /usr/local/bin, or the Debian package
#       that owns it on this host is installed in that stage)
#   (c) every bind-mounted source exists in the repository; every named volume is
#       declared; every absolute path a command, a healthcheck or a mounted lab
#       configuration names resolves, through that service's mounts, to a file that
#       exists once the init service's deploy/compose/prepare.sh has run (run here, into
#       temp directories standing for the volumes)
#   (d) ports: the DEMO_* defaults of docker-compose.yml are those of
#       deploy/compose/ports.env (and an override reaches every use); in the shared
#       network namespace no two listeners share a port; each published port has a
#       listener on a non-loopback address; each client (HAProxy's servers, certsync's
#       resolver/update/ACME directory, Pebble's -dnsserver, both unbounds' stubs) points
#       at the port of the listener it needs; Pebble's resolver is not certsync's and
#       caches nothing
#   (e) `haproxy -c` on the haproxy.cfg the compose setup renders, with the container
#       paths pointing at the temp copies (and proof that it is that file: the container
#       rendering, paths mapped, is byte-identical); knotc conf-check / zone-check and
#       unbound-checkconf on the lab configurations init renders (knot.conf,
#       unbound.conf, unbound-pebble.conf; pebble-config.json parsed), likewise proven
#
# Usage: BUILD=build bash tests/e2e/compose.sh     (certsync at $BUILD/bin/certsync)

# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need docker-compose python3 "$HAPROXY" openssl sed timeout
e2e_init

cd "$E2E_ROOT" || die "no repository at $E2E_ROOT"
COMPOSE=$E2E_ROOT/docker-compose.yml
DOCKERFILE=$E2E_ROOT/deploy/docker/Dockerfile
CERTSYNC=${CERTSYNC:-$BUILD/bin/certsync}
[ -x "$CERTSYNC" ] || die "no certsync binary at $CERTSYNC (build it, or set BUILD)"

# The DEMO_* and EDGETLS_* a developer may have exported must not change what we check.
for v in $(compgen -e | grep -E '^(DEMO_|EDGETLS_)'); do unset "$v"; done

# The python3 that has yaml: ours, else docker-compose's own interpreter (it needs yaml).
PY=python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
	PY=$(sed -n '1s/^#! *//p' "$(command -v docker-compose)" | awk '{print $1}')
	"$PY" -c 'import yaml' 2>/dev/null || die "no python3 with the yaml module (apt-get install python3-yaml)"
fi

# --- (a) ---------------------------------------------------------------------------------
section "(a) docker-compose config"
out=$(timeout 60 docker-compose -f "$COMPOSE" config -q 2>&1)
assert_eq "docker-compose config -q exit status" 0 "$?"
[ -z "$out" ] || log "$out"
timeout 60 docker-compose -f "$COMPOSE" config >"$E2E_TMP/config.yml" 2>"$E2E_TMP/config.log" ||
	die "docker-compose config failed: $(cat "$E2E_TMP/config.log")"
DEMO_HTTPS_PORT=9443 DEMO_AGENT_PORT=29345 DEMO_PEBBLE_DNS_PORT=25302 DEMO_KNOT_PORT=25300 \
	timeout 60 docker-compose -f "$COMPOSE" config \
	>"$E2E_TMP/config-override.yml" 2>>"$E2E_TMP/config.log" || die "docker-compose config with overrides failed"

# --- prepare the volumes as the init service would ---------------------------------------
# Each named volume is a temp directory; prepare.sh runs with init's environment, the
# container paths replaced by those directories.
V=$E2E_TMP/vol
mkdir -p "$V/etc" "$V/state" "$V/haproxy-run" "$V/knot" "$V/unbound"
init_env=$("$PY" - "$E2E_TMP/config.yml" <<'PY'
import sys, yaml, shlex
c = yaml.safe_load(open(sys.argv[1]))
env = c["services"]["init"].get("environment") or {}
if isinstance(env, list):
    env = dict(e.split("=", 1) for e in env)
for k, v in sorted(env.items()):
    print(f"{k}={shlex.quote(str(v))}")
PY
) || die "could not read init's environment"
printf '%s\n' "$init_env" >"$E2E_TMP/init.env"
(
	set -a
	# shellcheck disable=SC1091
	. "$E2E_TMP/init.env"
	set +a
	export CERTSYNC
	# Container paths as the compose file sets them, then mapped: the mapping table of
	# the python check below says the same.
	EDGETLS_CONF_DIR=$V/etc EDGETLS_STATE_DIR=$V/state EDGETLS_PKI_DIR=$V/etc/pki \
		EDGETLS_ADMIN_SOCK=$V/haproxy-run/admin.sock EDGETLS_KNOT_DIR=$V/knot \
		EDGETLS_UNBOUND_DIR=$V/unbound \
		timeout 120 sh deploy/compose/prepare.sh
) >"$E2E_TMP/prepare.log" 2>&1
assert_eq "deploy/compose/prepare.sh with init's environment (temp volumes)" 0 "$?"
# The same renderings with the container paths (render.sh is mounted at
# /opt/edgetls/deploy/compose in init), for the path checks and the byte comparisons.
C=$E2E_TMP/container
mkdir -p "$C"
LAB_FILES="knot.conf:knot-conf unbound.conf:unbound-conf unbound-pebble.conf:unbound-pebble-conf
pebble-config.json:pebble-config"
for f in haproxy.cfg:haproxy-cfg $LAB_FILES; do
	(
		set -a
		# shellcheck disable=SC1091
		. "$E2E_TMP/init.env"
		set +a
		EDGETLS_SPOE_CONF=$EDGETLS_CONF_DIR/spoe-mtls.conf EDGETLS_ZONE_DIR=/opt/edgetls/deploy/compose \
			sh deploy/compose/render.sh "${f#*:}"
	) >"$C/${f%%:*}" 2>>"$E2E_TMP/prepare.log" || die "render.sh ${f#*:} with init's environment failed"
done

# --- (b) (c) (d) -------------------------------------------------------------------------
section "(b) stages and programs, (c) files and volumes, (d) ports"
"$PY" - "$E2E_TMP/config.yml" "$E2E_TMP/config-override.yml" "$DOCKERFILE" \
	"$E2E_ROOT/deploy/compose/ports.env" "$V" "$E2E_ROOT" "$C" >"$E2E_TMP/checks.tsv" \
	2>"$E2E_TMP/checks.log" <<'PY'
import os, re, shutil, subprocess, sys, yaml, json

cfg_path, over_path, dockerfile, ports_env, V, root, C = sys.argv[1:8]
cfg = yaml.safe_load(open(cfg_path))
over = yaml.safe_load(open(over_path))
svcs = cfg["services"]

def check(desc, expected, got):
    print(f"{desc}\t{expected}\t{got}")

# ---- (b) Dockerfile stages and what each installs
stages, cur = {}, None
for line in open(dockerfile):
    m = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
    if m:
        cur = m.group(2) or f"#{len(stages)}"
        base = m.group(1)
        stages[cur] = {"from": base, "text": stages.get(base, {}).get("text", "")}
        continue
    if cur:
        stages[cur]["text"] += line

def pkg_of(prog):
    # Debian's own directories only (not /usr/local, pyenv shims...)
    path = shutil.which(prog, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        return None
    for p in (path, os.path.realpath(path)):
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None

ESSENTIAL = {"sh", "test", "cat", "sleep"}
def check_prog(name, tgt, prog, text):
    if prog in ESSENTIAL:
        got = "essential"
    elif re.search(r"COPY\s+--from=\S+\s+\S+\s+/usr/local/bin/" + re.escape(prog) + r"\b", text):
        got = "copied from the build stage"
    else:
        pkg = pkg_of(prog)
        # the packages the stage installs, and what each directly depends on
        inst = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", " ".join(re.findall(r"install -y[^\n&]*(?:\\\n[^\n&]*)*", text))))
        deps = set()
        for ip in inst:
            r = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", ip], capture_output=True, text=True)
            deps |= set(re.findall(r"(?:^|[,|]\s*)([a-z0-9][a-z0-9.+-]+)", r.stdout))
        if pkg and (pkg in inst or pkg in deps):
            got = f"package {pkg} installed"
        else:
            got = f"not provided (package on this host: {pkg})"
    check(f"{name}: stage {tgt} provides '{prog}'", "provided", "provided" if not got.startswith("not") else got)
    if got.startswith("copied"):
        # the build stage must produce it
        check(f"{name}: the Makefile builds bin/{prog}", "yes",
              "yes" if re.search(r"\$\(BUILD\)/bin/" + re.escape(prog) + r"\b", open(os.path.join(root, "Makefile")).read()) else "no")

for name, s in sorted(svcs.items()):
    b = s.get("build") or {}
    df = os.path.join(b.get("context", root), b.get("dockerfile", "Dockerfile"))
    check(f"{name}: dockerfile exists", "yes", "yes" if os.path.isfile(df) else f"no ({df})")
    tgt = b.get("target")
    check(f"{name}: stage '{tgt}' defined in deploy/docker/Dockerfile", "yes",
          "yes" if tgt in stages else f"no (stages: {', '.join(k for k in stages if not k.startswith('#'))})")
    cmd = s.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    if not cmd or tgt not in stages:
        continue
    text = stages[tgt]["text"]
    progs = [cmd[0]]
    if cmd[0] == "sh" and len(cmd) > 2 and cmd[1] == "-c":
        progs.append(cmd[2].split()[0])   # the program the shell line runs
    for prog in progs:
        check_prog(name, tgt, prog, text)

# ---- (c) mounts and the paths services name
declared = set((cfg.get("volumes") or {}).keys())
def mounts(s):
    out = []
    for v in s.get("volumes") or []:
        if isinstance(v, dict):
            src, dst, typ = v.get("source"), v["target"], v.get("type")
        else:
            parts = v.split(":")
            src, dst = parts[0], parts[1]
            typ = "bind" if src.startswith("/") or src.startswith(".") else "volume"
        out.append((typ, src, dst))
    return out

for name, s in sorted(svcs.items()):
    for typ, src, dst in mounts(s):
        if typ == "bind":
            ok = os.path.exists(src) and os.path.realpath(src).startswith(os.path.realpath(root) + os.sep)
            check(f"{name}: bind source {os.path.relpath(src, root)} exists in the repository", "yes", "yes" if ok else f"no ({src})")
        else:
            check(f"{name}: volume '{src}' declared", "yes", "yes" if src in declared else "no")

def host_path(s, p):
    """Map a container path through the service's mounts (longest prefix); None if unmounted."""
    best = None
    for typ, src, dst in mounts(s):
        if p == dst or p.startswith(dst.rstrip("/") + "/"):
            if best is None or len(dst) > len(best[2]):
                best = (typ, src, dst)
    if not best:
        return None
    typ, src, dst = best
    base = src if typ == "bind" else os.path.join(V, src)
    return base + p[len(dst):]

PATH_RE = re.compile(r"(/(?:etc|var|run|opt)/[A-Za-z0-9_./%-]+)")
for name, s in sorted(svcs.items()):
    cmd = s.get("command") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    for arg in cmd:
        for p in PATH_RE.findall(arg):
            hp = host_path(s, p)
            if hp is None:
                check(f"{name}: command path {p} is mounted", "mounted", "not under any mount")
                continue
            check(f"{name}: command path {p} exists after init", "yes", "yes" if os.path.exists(hp) else f"no ({hp})")
    hc = (s.get("healthcheck") or {}).get("test") or []
    for arg in hc:
        for p in PATH_RE.findall(arg):
            hp = host_path(s, p)
            check(f"{name}: healthcheck path {p} is on a shared volume", "yes",
                  "yes" if hp and os.path.isdir(os.path.dirname(hp)) else "no")

# The lab configuration each service runs: the path its command names ("-c", "-config"),
# read as init renders it with the container paths ($C, proven identical in (e)).
LAB = {}
def lab_conf(service, opt):
    if service in LAB:
        return LAB[service]
    cmd = svcs[service]["command"]
    p = argval(cmd, opt)
    check(f"{service}: runs the configuration init renders into /etc/edgetls", "yes",
          "yes" if p and p.startswith("/etc/edgetls/") and os.path.exists(os.path.join(C, os.path.basename(p))) else f"no ({p})")
    LAB[service] = open(os.path.join(C, os.path.basename(p))).read()
    return LAB[service]

def argval(cmd, opt):
    return cmd[cmd.index(opt) + 1] if opt in cmd else None

# Files the lab configurations name, through the mounts of the service that reads them.
def conf_paths(service, opt, regexes):
    s = svcs[service]
    text = lab_conf(service, opt)
    for rx in regexes:
        for p in sorted(set(re.findall(rx, text))):
            if "%s" in p:
                zones = re.findall(r"-\s*domain:\s*(\S+)", text)
                for z in zones:
                    zp = p.replace("%s", z.rstrip("."))
                    hz = host_path(s, zp)
                    check(f"{service}: zone file {zp} exists", "yes", "yes" if hz and os.path.exists(hz) else "no")
                continue
            hq = host_path(s, p)
            check(f"{service}: {os.path.basename(argval(s['command'], opt))} names {p}, which exists", "yes",
                  "yes" if hq and os.path.exists(hq) else f"no ({hq})")
conf_paths("knot", "-c", [r"include:\s*(\S+)", r'file:\s*"([^"]+)"', r'storage:\s*"([^"]+)"', r'rundir:\s*"([^"]+)"'])
conf_paths("pebble", "-config", [r'"(?:certificate|privateKey)":\s*"([^"]+)"'])
for name in ("unbound", "unbound-pebble"):
    d = re.search(r'directory:\s*"([^"]+)"', lab_conf(name, "-c")).group(1)
    tgt = (svcs[name].get("build") or {}).get("target")
    check(f"{name}: its directory {d} is made by stage {tgt}", "yes",
          "yes" if re.search(r"mkdir -p\s+" + re.escape(d) + r"\b", stages.get(tgt, {}).get("text", "")) else "no")

# ---- (d) ports
defaults = {}
for line in open(ports_env):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        k, v = line.split("=", 1)
        defaults[k] = v
ienv = svcs["init"].get("environment") or {}
for k, v in sorted(defaults.items()):
    check(f"ports.env {k} = docker-compose.yml default", v, str(ienv.get(k)))
oenv = over["services"]["init"]["environment"]
check("override DEMO_HTTPS_PORT reaches init's environment", "9443", str(oenv.get("DEMO_HTTPS_PORT")))
ocmd = " ".join(over["services"]["spoa-mtls"]["command"])
check("override DEMO_AGENT_PORT reaches the agent's --listen", "yes", "yes" if "127.0.0.1:29345" in ocmd else ocmd)
ocmd = " ".join(over["services"]["pebble"]["command"])
check("override DEMO_PEBBLE_DNS_PORT reaches Pebble's -dnsserver", "yes", "yes" if "127.0.0.1:25302" in ocmd else ocmd)
# the lab files are rendered by init from its environment (render.sh): the override gets there
check("override DEMO_KNOT_PORT reaches init's environment", "25300", str(oenv.get("DEMO_KNOT_PORT")))
opub = json.dumps(over["services"]["haproxy"].get("ports"))
check("override DEMO_HTTPS_PORT reaches the published port", "yes", "yes" if "9443" in opub else opub)

# listeners in haproxy's network namespace: (addr, port, proto, who)
etc, state = os.path.join(V, "etc"), os.path.join(V, "state")
listeners = []
def add(addr, port, who, proto="tcp"):
    listeners.append((addr, int(port), proto, who))
hcfg = open(os.path.join(etc, "haproxy.cfg")).read()
for m in re.finditer(r"^\s*bind\s+(\S*):(\d+)\s", hcfg, re.M):
    add(m.group(1) or "0.0.0.0", m.group(2), "haproxy bind")
acmd = svcs["spoa-mtls"]["command"]
for opt in ("--listen", "--metrics"):
    a = argval(acmd, opt)
    h, p = a.rsplit(":", 1)
    add(h, p, f"spoa-mtls {opt}")
add("127.0.0.1", svcs["origin"]["command"][-1], "origin")
ccfg = open(os.path.join(etc, "certsync.conf")).read()
m = re.search(r'metrics_listen\s*=\s*"([^"]*):(\d+)"', ccfg)
add(m.group(1), m.group(2), "certsync metrics_listen")
kconf = lab_conf("knot", "-c")
m = re.search(r"listen:\s*([\d.]+)@(\d+)", kconf)
add(m.group(1), m.group(2), "knot", "udp+tcp")
uconfs = {}
for name in ("unbound", "unbound-pebble"):
    uconf = uconfs[name] = lab_conf(name, "-c")
    m = re.search(r"interface:\s*([\d.]+)@(\d+)", uconf)
    add(m.group(1), m.group(2), name, "udp+tcp")
    check(f"{name}: port = interface port", m.group(2), re.search(r"^\s*port:\s*(\d+)", uconf, re.M).group(1))
uconf = uconfs["unbound"]
pconf = json.loads(lab_conf("pebble", "-config"))["pebble"]
for k in ("listenAddress", "managementListenAddress"):
    h, p = pconf[k].rsplit(":", 1)
    add(h, p, f"pebble {k}")

# Every service except the one-shots must live in haproxy's namespace for these to meet.
for name, s in sorted(svcs.items()):
    if name in ("haproxy", "init", "upload"):
        continue
    check(f"{name}: shares haproxy's network namespace", "service:haproxy", str(s.get("network_mode")))

byport = {}
for addr, port, proto, who in listeners:
    byport.setdefault(port, []).append(who)
for port, whos in sorted(byport.items()):
    check(f"port {port}: one listener in the namespace", "1", f"{len(whos)} ({', '.join(whos)})" if len(whos) > 1 else "1")

pub = []
for p in svcs["haproxy"].get("ports") or []:
    if isinstance(p, dict):
        pub.append((p.get("host_ip", "0.0.0.0"), int(p["published"]), int(p["target"])))
    else:
        parts = p.split("/")[0].split(":")
        ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        pub.append((ip, int(parts[-2]), int(parts[-1])))
seen = {}
for ip, hp_, tp in pub:
    seen.setdefault(hp_, []).append(ip)
for hp_, ips in sorted(seen.items()):
    check(f"host port {hp_}: published once", "1", str(len(ips)))
for ip, hp_, tp in pub:
    ls = [l for l in listeners if l[1] == tp]
    ok = ls and all(l[0] not in ("127.0.0.1", "::1", "localhost") for l in ls)
    check(f"published port {tp}: its listener is reachable from outside the namespace", "yes",
          "yes" if ok else f"no ({ls or 'no listener'})")
for name, s in svcs.items():
    if name != "haproxy" and s.get("ports"):
        check(f"{name}: publishes no port itself (namespace owner does)", "none", str(s.get("ports")))

def port_of(who):
    return [l[1] for l in listeners if l[3] == who][0]
srv = dict(re.findall(r"^\s*server\s+(\S+)\s+\S+:(\d+)", hcfg, re.M))
check("haproxy server agent1 -> spoa-mtls --listen", str(port_of("spoa-mtls --listen")), srv.get("agent1"))
check("haproxy server origin1 -> origin", str(port_of("origin")), srv.get("origin1"))
def cs(rx):
    m = re.search(rx, ccfg)
    return m.group(1) if m else None
if "acme:" in ccfg:
    check("certsync dns.resolver -> unbound", str(port_of("unbound")), cs(r'resolver\s*=\s*"[^"]*:(\d+)"'))
    check("certsync dns.update.server -> knot", str(port_of("knot")), cs(r'server\s*=\s*"[^"]*:(\d+)"'))
    check("certsync acme.directory -> pebble", str(port_of("pebble listenAddress")), cs(r'directory\s*=\s*"https://[^/]*:(\d+)/'))
    check("certsync tsig_name = the knot key id", cs(r'tsig_name\s*=\s*"([^"]+)"'),
          (re.search(r"id:\s*(\S+)", open(os.path.join(etc, "pki/knot-tsig.conf")).read()) or [None, None])[1])
    ts = open(os.path.join(etc, "pki/tsig.secret")).read().strip()
    check("knot-tsig.conf holds certsync's tsig.secret", "yes",
          "yes" if ts and ts in open(os.path.join(etc, "pki/knot-tsig.conf")).read() else "no")
pcmd = svcs["pebble"]["command"]
# Pebble's own resolver: a cache shared with certsync would serve Pebble the NXDOMAIN of
# certsync's delegation check (tests/e2e/acme_issue.sh).
check("pebble -dnsserver -> unbound-pebble", str(port_of("unbound-pebble")), argval(pcmd, "-dnsserver").rsplit(":", 1)[1])
if "acme:" in ccfg:
    check("certsync's resolver is not Pebble's", "different",
          "different" if cs(r'resolver\s*=\s*"[^"]*:(\d+)"') != str(port_of("unbound-pebble")) else "the same")
pu = uconfs["unbound-pebble"]
for k in ("cache-max-ttl", "cache-max-negative-ttl"):
    m = re.search(r"^\s*" + k + r":\s*(\d+)", pu, re.M)
    check(f"unbound-pebble caches nothing: {k}", "0", m.group(1) if m else "unset")
kzones = set(z.rstrip(".") for z in re.findall(r"-\s*domain:\s*(\S+)", kconf))
for name, u in sorted(uconfs.items()):
    stubs = set(re.findall(r"stub-addr:\s*[\d.]+@(\d+)", u))
    check(f"{name} stub-addr -> knot", str(port_of("knot")), ",".join(sorted(stubs)))
    uzones = set(z.rstrip(".") for z in re.findall(r'name:\s*"([^"]+)"', u))
    check(f"{name} stub zones = knot zones", ",".join(sorted(kzones)), ",".join(sorted(uzones)))
for k, who in (("DEMO_KNOT_PORT", "knot"), ("DEMO_UNBOUND_PORT", "unbound"),
               ("DEMO_PEBBLE_DNS_PORT", "unbound-pebble"),
               ("DEMO_PEBBLE_PORT", "pebble listenAddress"), ("DEMO_PEBBLE_MGMT_PORT", "pebble managementListenAddress")):
    check(f"ports.env {k} = the port in the lab configuration", defaults.get(k), str(port_of(who)))
PY
rc=$?
[ "$rc" -eq 0 ] || die "the compose checks crashed: $(tail -5 "$E2E_TMP/checks.log")"
while IFS=$'\t' read -r desc expected got; do
	assert_eq "$desc" "$expected" "$got"
done <"$E2E_TMP/checks.tsv"

# --- (e) haproxy -c and the lab's own checkers --------------------------------------------
section "(e) haproxy -c on the compose HAProxy configuration; knot and unbound checkers"
# container path -> temp copy, as the haproxy service mounts them
map_paths() {
	sed -e "s#/etc/edgetls#$V/etc#g" -e "s#/var/lib/edgetls#$V/state#g" \
		-e "s#/run/haproxy#$V/haproxy-run#g" -e "s#/var/lib/knot#$V/knot#g" \
		-e "s#/opt/edgetls/deploy/compose#$E2E_ROOT/deploy/compose#g" \
		-e "s#/var/lib/unbound#$V/unbound#g" "$1"
}
for f in haproxy.cfg $LAB_FILES; do
	f=${f%%:*}
	assert_eq "the rendered $f is the compose one with the paths mapped" \
		"$(map_paths "$C/$f" | sha256sum)" "$(sha256sum <"$V/etc/$f" 2>/dev/null)"
done
out=$(timeout 30 "$HAPROXY" -c -f "$V/etc/haproxy.cfg" 2>&1)
assert_eq "haproxy -c on the compose haproxy.cfg" 0 "$?"
assert_not_contains "haproxy -c: no warning" "$out" "WARNING"
assert_contains "the compose haproxy.cfg binds 0.0.0.0 (published port)" \
	"$(grep -E '^[[:space:]]*bind ' "$V/etc/haproxy.cfg")" "bind 0.0.0.0:8443 "

if command -v knotc >/dev/null; then
	assert_ok "knotc conf-check on the rendered knot.conf" timeout 30 knotc -c "$V/etc/knot.conf" conf-check
	for z in $(sed -n 's/^[[:space:]]*-[[:space:]]*domain:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$V/etc/knot.conf"); do
		assert_ok "knotc zone-check $z" timeout 30 knotc -c "$V/etc/knot.conf" zone-check "$z"
	done
else
	log "skip: knotc not installed"
fi
if command -v unbound-checkconf >/dev/null; then
	for f in unbound.conf unbound-pebble.conf; do
		assert_ok "unbound-checkconf on the rendered $f" timeout 30 unbound-checkconf "$V/etc/$f"
	done
else
	log "skip: unbound-checkconf not installed"
fi
assert_ok "the rendered pebble-config.json is JSON" python3 -m json.tool "$V/etc/pebble-config.json"

e2e_finish
