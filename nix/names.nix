# Names only, with builtins only: the flake's output names are computed from these without
# nixpkgs, so that the offline check (nix/tests/outputs.nix, `cargo xtask nix-check`) can
# evaluate them on machines where nixpkgs cannot be fetched.
let
  root = ../.;
  allHosts = [
    "hlua"
    "hpython"
    "hnode"
    "hsh"
  ];
in
{
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # A host is packaged once its crate has landed in hosts/ (the hosts arrive one by one).
  hosts = builtins.filter (host: builtins.pathExists (root + "/hosts/${host}/Cargo.toml")) allHosts;

  inherit allHosts;

  # The kernel matrix of the NixOS VM tests (see ./vm-test.nix for what each one asserts).
  kernels = [
    "linux-6_1"
    "linux-latest"
    "no-landlock"
  ];
}
