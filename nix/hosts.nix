# The hosts, as their manifests (hosts/HOST/host.toml, `[nix]`) describe them to the Nix build.
#
# `env` is what the host's build.rs hands to h-resolve (the shared `resolve/` crate): the exact
# /nix/store path of the interpreter whose runtime files go into the compiled-in landlock table.
# `H_STORE_ONLY=1` (set for every host in ./package.nix) makes resolution fail if any resolved
# path lies outside /nix/store, so nothing from /usr can leak into a Nix-built policy.
#
# `controls` maps the names under which cases and control runs call the bare interpreter to its
# store path; the VM tests and the development shell put them on the PATH. hpython's harness
# names the interpreter its build resolved (a store path), so it needs no link. The hosts
# themselves use the store paths compiled into them.
{ lib, pkgs }:
let
  names = import ./names.nix;
  describe =
    host:
    let
      manifest = lib.importTOML (../hosts + "/${host}/host.toml");
      nix = manifest.nix;
      interpreter = pkgs.${nix.interpreter};
      program = "${interpreter}/${nix.program}";
      linked = lib.optionals (nix.link or false) [ interpreter ];
    in
    {
      inherit (manifest) description;
      inherit interpreter program;
      env = lib.genAttrs (nix.env or [ ]) (_: program);
      nativeBuildInputs = linked;
      buildInputs = linked;
      controls = lib.genAttrs (nix.controls or [ ]) (_: program);
    };
in
lib.genAttrs names.hosts describe
