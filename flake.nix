{
  description = "h: hardened script hosts (hlua, hpython, hnode, hsh) running untrusted scripts under rlimits, no capabilities, no_new_privs, landlock and seccomp";

  # One input. Refresh the pin on a networked machine with
  #   nix flake update nixpkgs
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # Names come from builtins only (nix/names.nix), values are lazy: the offline check
      # (nix/tests/outputs.nix) lists every output without fetching nixpkgs.
      names = import ./nix/names.nix;
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system;
          }) names.systems
        );
      select =
        set: wanted:
        builtins.listToAttrs (
          map (name: {
            inherit name;
            value = set.${name};
          }) wanted
        );
      pkgsFor = system: nixpkgs.legacyPackages.${system};
      # The hosts built by this flake's pinned nixpkgs: { hlua, hpython, hnode, hsh, all }.
      hFor = system: (pkgsFor system).callPackage ./nix/packages.nix { };
    in
    {
      # Another flake pins h with an input and this overlay: pkgs.hScriptHosts.hlua, ...,
      # pkgs.hScriptHosts.all, built with that flake's nixpkgs (its python3, nodejs and bash end
      # up in the policies). Not `pkgs.h`: nixpkgs has a package of that name.
      overlays.default = final: prev: { hScriptHosts = final.callPackage ./nix/packages.nix { }; };

      packages = forAllSystems (
        system:
        let
          h = hFor system;
        in
        select h names.hosts // { default = h.all; }
      );

      apps = forAllSystems (
        system:
        let
          h = hFor system;
          app = host: {
            type = "app";
            program = "${h.${host}}/bin/${host}";
            meta.description = h.${host}.meta.description;
          };
        in
        builtins.listToAttrs (
          map (host: {
            name = host;
            value = app host;
          }) names.hosts
        )
        # `nix run` without a name: hlua, the host of the README's demo.
        // {
          default = app "hlua";
        }
      );

      devShells = forAllSystems (system: {
        default = (pkgsFor system).callPackage ./nix/devshell.nix { };
      });

      # `nix fmt`: nixfmt (RFC style) over the whole tree; nixfmt alone formats only the files
      # it is given, nixfmt-tree (treefmt configured with nixfmt) walks the tree.
      formatter = forAllSystems (system: (pkgsFor system).nixfmt-tree);

      checks = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
          h = hFor system;
          cases = pkgs.callPackage ./nix/cases.nix { };
          kernels = import ./nix/kernels.nix pkgs;
        in
        # Every host package builds (with H_STORE_ONLY=1: store paths only in its tables).
        builtins.listToAttrs (
          map (host: {
            name = "package-${host}";
            value = h.${host};
          }) names.hosts
        )
        // {
          # codegen --check, verify, and the unit tests of h-filter, xtask, h-sandbox and h-host.
          filters = pkgs.callPackage ./nix/filters.nix { };
          # The case harnesses build (they run in the VM tests).
          inherit cases;
        }
        # The hosts' cases as an unprivileged user, one VM per kernel of nix/kernels.nix.
        // builtins.listToAttrs (
          map (kernel: {
            name = "vm-${kernel}";
            value = pkgs.callPackage ./nix/vm-test.nix {
              name = kernel;
              kernel = kernels.${kernel};
              hostPackages = select h names.hosts;
              inherit cases;
            };
          }) names.kernels
        )
      );
    };
}
