# One NixOS VM test: boot a kernel and run every host's case harness (testkit's runner, the one
# `cargo xtask test` and the QEMU guest use) as an unprivileged user with `--vm`: the harness
# runs the kernel checks against the ABI ./kernels.nix expects, skips exactly the cases whose
# `[needs]` (in their own test.toml) this machine cannot meet, and on the kernel without
# landlock runs every case with --allow-degraded. This script only boots, lays out the files
# the harness was built to find, and reads its count.
{
  lib,
  pkgs,
  name,
  kernel,
  hostPackages,
  cases,
}:
let
  info = lib.mapAttrs (host: package: { binary = lib.getExe package; }) hostPackages;
  controls = lib.foldl' (acc: package: acc // package.passthru.controls) { } (
    lib.attrValues hostPackages
  );
  expectations = {
    inherit (kernel) kernelPrefix landlock abi;
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


    def as_tester(command: str, timeout: int = 900) -> tuple[int, str]:
        """Runs COMMAND as the unprivileged user; returns (status, stdout+stderr)."""
        return machine.execute(f"runuser -u tester -- sh -c {shlex.quote(command)} 2>&1", timeout=timeout)


    machine.wait_for_unit("multi-user.target")
    release = machine.succeed("uname -r").strip()
    print(f"kernel {release}; lsm: {machine.execute('cat /sys/kernel/security/lsm')[1].strip()}")
    assert release.startswith(expect["kernelPrefix"]), f"booted {release}, wanted {expect['kernelPrefix']}*"
    machine.succeed("install -d -m 755 /srv/probe && touch /srv/probe/empty && chmod 644 /srv/probe/empty")
    summary = []

    for host, info in sorted(hosts.items()):
        binary = info["binary"]
        if expect["landlock"]:
            with subtest(f"{host}: a Nix-built policy names store paths only"):
                status, text = as_tester(f"{binary} --print-policy=json /srv/probe/empty")
                assert status == 0, text
                rules = json.loads(text)["landlock"]["rules"]
                leaked = [rule["path"] for rule in rules if rule["path"].startswith("/usr/")]
                assert not leaked, f"{host}: /usr leaked into the policy: {leaked}"

        with subtest(f"{host}: the kernel checks and every case, as the unprivileged user"):
            source = f"{cases}/{host}"
            crate = machine.succeed(f"cat {source}/manifest-dir").strip()
            target = machine.succeed(f"cat {source}/binary-path").strip()
            # Recreate the build-time paths the harness has compiled in, with the packaged binary.
            machine.succeed(
                f"mkdir -p {crate} && cp -r {source}/crate/. {crate}/ && chmod -R u+w,a+rX {crate}",
                f"install -D -m 755 {binary} {target}",
                f"chmod a+rx $(dirname {crate}) $(dirname {target})",
            )
            command = f"{source}/harness --vm --expect-abi {shlex.quote(expect['abi'])}"
            status, output = as_tester(command, timeout=3600)
            print(output)
            counts = re.search(r"(\d+) passed, (\d+) failed", output)
            assert counts is not None, f"{host}: the harness printed no count"
            assert status == 0 and counts.group(2) == "0", f"{host} failed on {release}"
            assert int(counts.group(1)) > 0, f"{host}: no case ran"
            summary.append(f"{host}: {counts.group(1)} passed")

    print(f"kernel {release}: " + "; ".join(summary))
  '';
}
