# The source tree the Rust builds see: the repository without its Nix and CI layer, so that
# editing a .nix file or a workflow does not rebuild the hosts.
{ lib }:
let
  root = ../.;
  excluded = map lib.fileset.maybeMissing [
    (root + "/.git")
    (root + "/.github")
    (root + "/nix")
    (root + "/flake.nix")
    (root + "/flake.lock")
    (root + "/target")
    (root + "/result")
  ];
in
lib.fileset.toSource {
  inherit root;
  fileset = lib.fileset.difference root (lib.fileset.unions excluded);
}
