# Names only, with builtins only: the flake's output names are computed from these without
# nixpkgs, so that the offline check (nix/tests/outputs.nix, `cargo xtask nix-check`) can
# evaluate them on machines where nixpkgs cannot be fetched.
let
  root = ../.;
  entries = builtins.readDir (root + "/hosts");
in
{
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # Every host crate with a manifest (hosts/HOST/host.toml), by name: a new host is packaged,
  # tested and run by its manifest alone.
  hosts = builtins.filter (
    name: entries.${name} == "directory" && builtins.pathExists (root + "/hosts/${name}/host.toml")
  ) (builtins.attrNames entries);

  # The kernel matrix of the NixOS VM tests (see ./vm-test.nix for what each one asserts).
  kernels = [
    "linux-6_1"
    "linux-latest"
    "no-landlock"
  ];
}
