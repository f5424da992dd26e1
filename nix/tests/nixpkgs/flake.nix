# A stand-in for nixpkgs, for `cargo xtask nix-check` on machines that cannot fetch nixpkgs:
#
#   nix flake check --no-build --override-input nixpkgs path:$PWD/nix/tests/nixpkgs
#
# Its `lib` (./lib.nix) and packages (./pkgs.nix) are written for h, after nixpkgs' own source:
# every builder takes only the arguments h's Nix files are known to pass (checked against
# nixpkgs) and throws on anything else, records what it was given (`standIn`), and returns a
# real derivation that evaluates and instantiates but cannot be built.
{
  description = "stand-in nixpkgs for h's offline Nix check";

  outputs =
    { self }:
    let
      lib = import ./lib.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs lib.platforms.linux (system: import ./pkgs.nix { inherit lib system; });
    };
}
