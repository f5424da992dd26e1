# Every host that has landed in hosts/, plus `all` (the flake's `default`): one symlinkJoin,
# whose main program is hlua (`nix run` without a name plays examples/fun.lua's host).
# Used both by the flake's `packages` and by `overlays.default` (as `pkgs.hScriptHosts`).
{
  lib,
  callPackage,
  symlinkJoin,
}:
let
  names = import ./names.nix;
  hosts = lib.genAttrs names.hosts (host: callPackage ./package.nix { inherit host; });
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;
in
hosts
// {
  all = symlinkJoin {
    name = "h-${version}";
    paths = lib.attrValues hosts;
    meta = {
      description = "h: hardened script hosts (${lib.concatStringsSep ", " names.hosts})";
      license = lib.licenses.mit;
      mainProgram = "hlua";
      platforms = lib.platforms.linux;
    };
  };
}
