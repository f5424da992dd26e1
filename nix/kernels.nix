# The kernel matrix of the NixOS VM tests and the landlock ABI each must show (the harness's
# `--expect-abi`); the same kernel checks and cases as the QEMU matrix (`cargo xtask vm-test`):
#
# - linux-6_1 (LTS, landlock ABI 2): the hosts run without --allow-degraded; --print-policy
#   shows the filesystem rights enforced and the TCP rules (ABI 4) and scopes (ABI 6) absent,
#   and seccomp allows no network socket; every case not skipped passes.
# - linux-latest (ABI >= 6): TCP rules, signal and abstract-socket scopes enforced.
# - no-landlock (the latest kernel booted with landlock left out of `lsm=`, standing in for 5.10):
#   every host refuses to run without --allow-degraded (exit 1, message names landlock); with it
#   every case runs, and those marked `holds_without_landlock` (seccomp alone stops exec, the
#   network, the inherited environment) must pass.
pkgs: {
  "linux-6_1" = {
    kernelPackages = pkgs.linuxPackages_6_1;
    kernelPrefix = "6.1.";
    landlock = true;
    abi = "2";
  };
  "linux-latest" = {
    kernelPackages = pkgs.linuxPackages_latest;
    kernelPrefix = "";
    landlock = true;
    abi = "6+";
  };
  "no-landlock" = {
    kernelPackages = pkgs.linuxPackages_latest;
    kernelPrefix = "";
    landlock = false;
    abi = "none";
  };
}
