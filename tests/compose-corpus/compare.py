#!/usr/bin/env python3
"""Compares what cpipe and Debian's docker-compose make of one compose file.

usage: compare.py SOURCE.yml CPIPE.json COMPOSE.yml

CPIPE.json is `cpipe -f SOURCE config --json`, COMPOSE.yml is
`docker-compose -f SOURCE config`. For every service docker-compose prints,
the fields both model are compared: image, command and entrypoint argv,
environment, volumes, ports, depends_on, working_dir, user, healthcheck.
Known, documented differences are normalized away first:
  - a port published without a host address: cpipe binds 127.0.0.1;
  - depends_on without a condition: compose says service_started, cpipe
    "completed" for a job (README, Jobs and services), so conditions are
    compared only where the file states one;
  - an anonymous volume: cpipe mounts a tmpfs;
  - docker-compose 1.29 prints a literal `$` as `$$` (so that its output
    loads again), cpipe prints the value;
  - a backslash-newline inside double quotes of a command string: a POSIX
    shell (and cpipe) drops it, Python's shlex (docker-compose) keeps it;
    the program (`sh -c`, `bash -c`) that gets the string drops it anyway.
Prints one line per difference and exits 1 if there is any.
"""
import json
import shlex
import sys

import yaml


def unescape(v):
    """docker-compose's `$$` back to `$`, everywhere in a value."""
    if isinstance(v, str):
        return v.replace('$$', '$')
    if isinstance(v, list):
        return [unescape(x) for x in v]
    if isinstance(v, dict):
        return {k: unescape(x) for k, x in v.items()}
    return v


def argv(v):
    if v is None:
        return None
    if isinstance(v, str):
        v = shlex.split(v)
    return [str(x).replace('\\\n', '') for x in v]


def env_map(v):
    if not v:
        return {}
    if isinstance(v, list):
        out = {}
        for e in v:
            k, _, val = e.partition('=')
            out[k] = val if '=' in e else None
        v = out
    return {k: (str(x).lower() if isinstance(x, bool) else str(x))
            for k, x in v.items() if x is not None}


def mode_ro(mode):
    return 'ro' in mode.split(',')


def volume_dc(v):
    if isinstance(v, dict):
        t = v.get('type', 'volume')
        src = v.get('source')
        if t == 'volume' and not src:
            return ('anonymous', None, v['target'], False)
        return (t, src, v['target'], bool(v.get('read_only', False)))
    parts = v.split(':')
    if len(parts) == 1:
        return ('anonymous', None, parts[0], False)
    src, dst = parts[0], parts[1]
    ro = len(parts) > 2 and mode_ro(parts[2])
    t = 'bind' if src.startswith('/') or src.startswith('.') or src.startswith('~') else 'volume'
    return (t, src, dst, ro)


def volume_cp(v):
    if v['type'] == 'tmpfs' and 'source' not in v:
        return ('anonymous', None, v['target'], False)
    return (v['type'], v.get('source'), v['target'], bool(v.get('read_only')))


def port_dc(p):
    if isinstance(p, dict):
        pub = p.get('published')
        return (str(pub) if pub is not None else None, str(p['target']),
                p.get('protocol', 'tcp'), p.get('host_ip'))
    s, _, proto = str(p).partition('/')
    parts = s.rsplit(':', 2)
    ip = parts[0] if len(parts) == 3 else None
    pub = parts[-2] if len(parts) >= 2 and parts[-2] else None
    return (pub, parts[-1], proto or 'tcp', ip)


def port_cp(p, dc_ip):
    ip = p.get('host_ip')
    if dc_ip is None and ip == '127.0.0.1':
        ip = None
    return (p.get('published'), p['target'], p.get('protocol', 'tcp'), ip)


def duration_ms(s):
    if s is None:
        return None
    s = str(s)
    units = [('ms', 1), ('us', 0.001), ('ns', 1e-6), ('h', 3600000), ('m', 60000), ('s', 1000)]
    total, num = 0.0, ''
    i = 0
    while i < len(s):
        c = s[i]
        if c.isdigit() or c == '.':
            num += c
            i += 1
            continue
        for u, f in units:
            if s.startswith(u, i):
                total += float(num) * f
                num = ''
                i += len(u)
                break
        else:
            return s
    if num:
        total += float(num) * 1000
    return int(total)


def health_test(t):
    if t is None:
        return None
    if isinstance(t, str):
        return ['CMD-SHELL', t]
    return [str(x) for x in t]


def stated_conditions(source, name):
    """depends_on entries of `name` in the source that state a condition."""
    try:
        with open(source) as f:
            doc = yaml.safe_load(f) or {}
    except Exception:
        return {}
    svc = (doc.get('services') or {}).get(name) or {}
    deps = svc.get('depends_on') or {}
    if isinstance(deps, list):
        return {}
    return {k: v['condition'] for k, v in deps.items() if isinstance(v, dict) and 'condition' in v}


def compare(source, cp, dc):
    diffs = []
    stages = cp.get('stages', {})
    for name, s in (dc.get('services') or {}).items():
        c = stages.get(name)
        if c is None:
            diffs.append(f'{name}: missing in cpipe')
            continue

        def diff(field, a, b):
            if a != b:
                diffs.append(f'{name}: {field}: docker-compose {a!r} != cpipe {b!r}')

        diff('image', s.get('image'), c.get('image'))
        diff('command', argv(s.get('command')), argv(c.get('command')))
        diff('entrypoint', argv(s.get('entrypoint')), argv(c.get('entrypoint')))
        diff('environment', env_map(s.get('environment')), env_map(c.get('environment')))
        diff('working_dir', s.get('working_dir'), c.get('working_dir'))
        diff('user', None if s.get('user') is None else str(s['user']), c.get('user'))
        diff('volumes', sorted(map(volume_dc, s.get('volumes') or []), key=str),
             sorted(map(volume_cp, c.get('volumes') or []), key=str))
        dports = [port_dc(p) for p in s.get('ports') or []]
        ips = {p[1]: p[3] for p in dports}
        diff('ports', sorted(dports, key=str),
             sorted((port_cp(p, ips.get(p['target'])) for p in c.get('ports') or []), key=str))
        ddeps = s.get('depends_on') or {}
        if isinstance(ddeps, list):
            ddeps = {d: {} for d in ddeps}
        cdeps = c.get('depends_on') or {}
        diff('depends_on', sorted(ddeps), sorted(cdeps))
        for dep, cond in stated_conditions(source, name).items():
            diff(f'depends_on.{dep}.condition', cond, (cdeps.get(dep) or {}).get('condition'))
        dh, ch = s.get('healthcheck'), c.get('healthcheck')
        if dh and not dh.get('disable'):
            if not ch:
                diffs.append(f'{name}: healthcheck missing in cpipe')
            else:
                diff('healthcheck.test', health_test(dh.get('test')), health_test(ch.get('test')))
                for k in ('interval', 'timeout', 'start_period'):
                    if k in dh:
                        diff('healthcheck.' + k, duration_ms(dh[k]), duration_ms(ch.get(k)))
                if 'retries' in dh:
                    diff('healthcheck.retries', int(dh['retries']), int(ch.get('retries')))
    return diffs


def main():
    source, cp_path, dc_path = sys.argv[1:4]
    with open(cp_path) as f:
        cp = json.load(f)
    with open(dc_path) as f:
        dc = unescape(yaml.safe_load(f) or {})
    diffs = compare(source, cp, dc)
    for d in diffs:
        print(f'{source}: {d}')
    sys.exit(1 if diffs else 0)


if __name__ == '__main__':
    main()
