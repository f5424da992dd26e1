# One NixOS VM test: boot a kernel, run every host's case harness as an unprivileged user and
# assert what that kernel must show (./kernels.nix); on the kernel without landlock, run the
# seccomp probes of ./hosts.nix instead.
{
  lib,
  pkgs,
  name,
  kernel,
  hostPackages,
  cases,
}:
let
  # The port of the listener the network probes aim at (their scripts name it too).
  listenerPort = 8000;
  # What each case declares it needs (`[needs]` in its test.toml: programs on the case PATH,
  # files, a landlock ABI), read here and checked inside the VM, which skips what it cannot
  # provide: NixOS has no /lib/x86_64-linux-gnu or /usr/bin/id, and linux-6_1 has ABI 2.
  caseNeeds =
    host:
    lib.concatMap (
      folder:
      let
        dir = ../hosts + "/${host}/${folder}";
        cases = lib.attrNames (lib.filterAttrs (_: type: type == "directory") (builtins.readDir dir));
      in
      lib.optionals (builtins.pathExists dir) (
        map (case: {
          name = "${host}/${folder}/${case}";
          needs = (lib.importTOML (dir + "/${case}/test.toml")).needs or { };
        }) cases
      )
    ) [
      "cases"
      "attacks"
    ];
  info = lib.mapAttrs (
    host: package:
    let
      probes = package.passthru.probes;
    in
    {
      binary = lib.getExe package;
      inherit (package.passthru) control;
      needs = builtins.filter (case: case.needs != { }) (caseNeeds host);
      probes = lib.mapAttrs (
        probe: spec:
        spec
        // {
          script = pkgs.writeText "${host}-${probe}-probe" spec.script;
        }
      ) probes;
    }
  ) hostPackages;
  controls = lib.foldl' (acc: package: acc // package.passthru.controls) { } (
    lib.attrValues hostPackages
  );
  expectations = {
    inherit (kernel)
      kernelPrefix
      landlock
      abiMin
      abiMax
      runCases
      ;
    inherit listenerPort;
  };
in
pkgs.testers.runNixOSTest {
  name = "h-${name}";

  nodes.machine =
    { ... }:
    {
      boot.kernelPackages = kernel.kernelPackages;
      # NixOS passes `lsm=` from security.lsm (landlock, yama and bpf by default); leaving
      # landlock out gives a kernel without landlock, the case --allow-degraded exists for.
      security.lsm = lib.mkIf (!kernel.landlock) (lib.mkForce [
        "yama"
        "bpf"
      ]);

      users.users.tester = {
        isNormalUser = true;
        description = "unprivileged user running the cases";
      };

      environment.systemPackages = lib.attrValues hostPackages;

      # The case harness runs its control runs with PATH=/usr/local/bin:/usr/bin:/bin.
      systemd.tmpfiles.rules = lib.mapAttrsToList (
        command: target: "L+ /usr/local/bin/${command} - - - - ${target}"
      ) controls;

      # A listener for the network probes: the control run must reach it, the host must not.
      systemd.services.h-listener = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 -m http.server ${toString listenerPort} --bind 127.0.0.1";
      };

      virtualisation = {
        memorySize = 2048;
        cores = 2;
      };
    };

  testScript = ''
    import json
    import re
    import shlex

    hosts = json.loads(${builtins.toJSON (builtins.toJSON info)})
    expect = json.loads(${builtins.toJSON (builtins.toJSON expectations)})
    cases = "${cases}/share/h-cases"
    # The PATH the case harness gives every run (h-testkit).
    case_path = "/usr/local/bin:/usr/bin:/bin"


    def as_tester(command: str, timeout: int = 900) -> tuple[int, str]:
        """Runs COMMAND as the unprivileged user; returns (status, stdout+stderr)."""
        return machine.execute(f"runuser -u tester -- sh -c {shlex.quote(command)} 2>&1", timeout=timeout)


    def unmet(needs: dict, abi: int) -> str | None:
        """Why a case with these declared needs cannot hold on this machine; None if it can."""
        wanted = needs.get("landlock_abi")
        if wanted is not None and abi < wanted:
            return f"needs landlock ABI {wanted}, this kernel has {abi}"
        minimum = needs.get("kernel")
        if minimum is not None:
            release = machine.succeed("uname -r").strip()
            numbers = [int(part) for part in re.findall(r"[0-9]+", release)[:2]]
            wanted_numbers = [int(part) for part in minimum.split(".")[:2]]
            if numbers < wanted_numbers:
                return f"needs linux {minimum}, this kernel is {release}"
        for program in needs.get("programs", []):
            if as_tester(f"export PATH={case_path}; command -v {shlex.quote(program)}")[0] != 0:
                return f"needs {program} on {case_path}"
        for path in needs.get("files", []):
            if machine.execute(f"test -e {shlex.quote(path)}")[0] != 0:
                return f"needs {path}"
        choices = needs.get("any_file", [])
        if choices and all(machine.execute(f"test -e {shlex.quote(path)}")[0] != 0 for path in choices):
            return f"needs one of {', '.join(choices)}"
        return None


    def feature(policy, text, enforced):
        """Reads --print-policy=json: whether it marks landlock feature `text` as enforced."""
        features = {entry["feature"]: entry["enforced"] for entry in policy["landlock"]["features"]}
        assert features.get(text) == enforced, f"--print-policy=json: {text} is {features.get(text)}, not {enforced}"


    machine.wait_for_unit("multi-user.target")
    release = machine.succeed("uname -r").strip()
    print(f"kernel {release}; lsm: {machine.execute('cat /sys/kernel/security/lsm')[1].strip()}")
    assert release.startswith(expect["kernelPrefix"]), f"booted {release}, wanted {expect['kernelPrefix']}*"
    machine.succeed("install -d -m 755 /srv/probe && touch /srv/probe/empty && chmod 644 /srv/probe/empty")
    summary = []
    abi = 0

    for host, info in sorted(hosts.items()):
        binary = info["binary"]
        with subtest(f"{host}: what the kernel enforces"):
            status, version = as_tester(f"{binary} --version")
            assert status == 0, f"{host} --version failed: {version}"
            match = re.search(r"landlock ABI (\d+)", version)
            if expect["landlock"]:
                assert match is not None, f"{host} reports no landlock on {release}: {version}"
                abi = int(match.group(1))
                assert abi >= expect["abiMin"], f"{host}: landlock ABI {abi} < {expect['abiMin']}"
                if expect["abiMax"] is not None:
                    assert abi <= expect["abiMax"], f"{host}: landlock ABI {abi} > {expect['abiMax']}"
                status, text = as_tester(f"{binary} --print-policy=json /srv/probe/empty")
                assert status == 0, text
                policy = json.loads(text)
                feature(policy, "filesystem: execute, read, write, create, remove (ABI 1)", True)
                feature(policy, "filesystem: link and rename across directories (ABI 2)", True)
                feature(policy, "network: TCP bind and connect (ABI 4)", abi >= 4)
                feature(policy, "scope: abstract unix sockets and signals (ABI 6)", abi >= 6)
                # A Nix-built policy names store paths only (plus the script and /dev nodes).
                leaked = [rule["path"] for rule in policy["landlock"]["rules"] if rule["path"].startswith("/usr/")]
                assert not leaked, f"{host}: /usr leaked into the policy: {leaked}"
                summary.append(f"{host}: landlock ABI {abi}")
            else:
                assert "no landlock" in version, f"{host} claims landlock: {version}"
                status, output = as_tester(f"{binary} /srv/probe/empty")
                assert status == 1 and "landlock" in output, (
                    f"{host} without landlock and without --allow-degraded: exit {status}, {output}"
                )
                status, text = as_tester(f"{binary} --allow-degraded --print-policy=json /srv/probe/empty")
                assert status == 0 and json.loads(text)["landlock"]["degraded"], text
                status, output = as_tester(f"{binary} --allow-degraded /srv/probe/empty")
                assert status == 0, f"{host} --allow-degraded: exit {status}, {output}"
                summary.append(f"{host}: no landlock, refused without --allow-degraded")

        if not expect["landlock"]:
            # The network probes' control runs must reach the listener: wait until it listens.
            machine.wait_for_unit("h-listener.service")
            machine.wait_for_open_port(expect["listenerPort"], "127.0.0.1")
            for probe, spec in sorted(info["probes"].items()):
                with subtest(f"{host}: seccomp alone stops the {probe} probe"):
                    run = f"env H_SECRET=leak {{}} {spec['script']}; echo \"status=$?\""
                    _, control = as_tester(run.format(info["control"]))
                    assert spec["control"] in control, f"{host} {probe} control run proves nothing: {control}"
                    _, output = as_tester(run.format(f"{binary} --allow-degraded"))
                    status = int(output.rsplit("status=", 1)[1])
                    shown = output.rsplit("status=", 1)[0]
                    if "stdout" in spec:
                        lines = [line.strip() for line in shown.splitlines()]
                        assert spec["stdout"] in lines and status == 0, f"{host} {probe}: {output}"
                    if "lacks" in spec:
                        assert spec["lacks"] not in shown, f"{host} {probe} got through: {output}"
                    if spec.get("status") == "nonzero":
                        assert status != 0, f"{host} {probe}: exit 0: {output}"
                    elif "status" in spec:
                        assert status == spec["status"], f"{host} {probe}: exit {status}: {output}"
                    if "stderr" in spec:
                        assert spec["stderr"] in shown, f"{host} {probe}: no '{spec['stderr']}': {output}"

        if expect["runCases"]:
            with subtest(f"{host}: every case, as the unprivileged user"):
                source = f"{cases}/{host}"
                crate = machine.succeed(f"cat {source}/manifest-dir").strip()
                target = machine.succeed(f"cat {source}/binary-path").strip()
                # Recreate the build-time paths the harness has compiled in, with the packaged binary.
                machine.succeed(
                    f"mkdir -p {crate} && cp -r {source}/crate/. {crate}/ && chmod -R u+w,a+rX {crate}",
                    f"install -D -m 755 {binary} {target}",
                    f"chmod a+rx $(dirname {crate}) $(dirname {target})",
                )
                skips = []
                for case in info["needs"]:
                    reason = unmet(case["needs"], abi)
                    if reason is not None:
                        skips.append(f"--skip {shlex.quote(case['name'] + ':' + reason)}")
                status, output = as_tester(f"{source}/harness {' '.join(skips)}", timeout=3600)
                print(output)
                counts = re.search(r"(\d+) passed, (\d+) failed", output)
                assert counts is not None, f"{host}: the harness printed no count"
                assert status == 0 and counts.group(2) == "0", f"{host} cases failed on {release}"
                assert int(counts.group(1)) > 0, f"{host}: no case ran"
                summary.append(f"{host}: {counts.group(1)} cases passed")

    print(f"kernel {release}: " + "; ".join(summary))
  '';
}
