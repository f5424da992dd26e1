# The kernel matrix of the NixOS VM tests and what each kernel must show; the same
# expectations as the QEMU matrix (`cargo xtask vm-test`):
#
# - linux-6_1 (LTS, landlock ABI 2): the hosts run without --allow-degraded; --print-policy
#   shows the filesystem rights enforced and the TCP rules (ABI 4) and scopes (ABI 6) absent;
#   every case passes, so the network attack cases still fail, through seccomp.
# - linux-latest (ABI >= 6): TCP rules, signal and abstract-socket scopes enforced; every case passes.
# - no-landlock (the latest kernel booted with landlock left out of `lsm=`, standing in for 5.10):
#   every host refuses to run without --allow-degraded (exit 1, message names landlock); with it
#   the host runs, --print-policy says NOT ENFORCED, and seccomp still blocks exec and the
#   inherited environment.
pkgs: {
  "linux-6_1" = {
    kernelPackages = pkgs.linuxPackages_6_1;
    kernelPrefix = "6.1.";
    landlock = true;
    abiMin = 2;
    abiMax = 2;
    runCases = true;
  };
  "linux-latest" = {
    kernelPackages = pkgs.linuxPackages_latest;
    kernelPrefix = "";
    landlock = true;
    abiMin = 6;
    abiMax = null;
    runCases = true;
  };
  "no-landlock" = {
    kernelPackages = pkgs.linuxPackages_latest;
    kernelPrefix = "";
    landlock = false;
    abiMin = null;
    abiMax = null;
    runCases = false;
  };
}
