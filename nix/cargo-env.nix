# The environment every cargo invocation of the Nix build shares: the store paths of all
# interpreters (see ./hosts.nix) and H_STORE_ONLY, so that whichever host crate gets compiled,
# its build.rs resolves store paths only.
{ lib, pkgs }:
let
  hosts = import ./hosts.nix { inherit lib pkgs; };
in
{
  env = {
    H_STORE_ONLY = "1";
  }
  // lib.foldl' (acc: info: acc // info.env) { } (lib.attrValues hosts);
  nativeBuildInputs = lib.unique (lib.concatMap (info: info.nativeBuildInputs) (lib.attrValues hosts));
  buildInputs = lib.unique (lib.concatMap (info: info.buildInputs) (lib.attrValues hosts));
}
