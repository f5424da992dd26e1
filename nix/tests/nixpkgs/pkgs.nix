# The stand-in's package set for one system (see ./flake.nix). Every attribute here exists in
# nixpkgs under the same name; builders accept only the arguments listed with them.
{ lib, system }:
let
  names = list: builtins.concatStringsSep ", " list;

  # `args`, or a throw naming every key outside `allowed`.
  only =
    what: allowed: args:
    let
      extra = builtins.filter (key: !builtins.elem key allowed) (builtins.attrNames args);
    in
    if !builtins.isAttrs args then
      throw "stand-in ${what}: expects an attribute set"
    else if extra != [ ] then
      throw "stand-in ${what}: ${names extra} not among the arguments checked against nixpkgs (${names allowed})"
    else
      args;

  # Environment values must be strings (nixpkgs' mkDerivation refuses others in `env`).
  strings =
    what: set:
    let
      bad = builtins.filter (key: !builtins.isString set.${key}) (builtins.attrNames set);
    in
    if bad == [ ] then set else throw "stand-in ${what}: env values ${names bad} are not strings";

  # What a package is called in the records (derivations are not JSON).
  nameOf = value: value.pname or value.name or "?";

  # A derivation that instantiates like a real one and fails when built.
  derivationFor =
    name: environment:
    builtins.derivation (
      environment
      // {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          "echo 'stand-in nixpkgs: ${name} cannot be built'; exit 1"
        ];
      }
    );

  package =
    pname: mainProgram: extra:
    derivationFor pname { }
    // {
      inherit pname;
      version = "stand-in";
      meta = {
        inherit mainProgram;
      };
    }
    // extra;

  metaKeys = [
    "description"
    "license"
    "mainProgram"
    "platforms"
  ];

  # Module values: mkIf and mkForce resolved as the module system resolves a single definition.
  resolve =
    value:
    if builtins.isAttrs value && value._type or null == "if" then
      (if value.condition then resolve value.content else null)
    else if builtins.isAttrs value && value._type or null == "override" then
      resolve value.content
    else
      value;

  # The NixOS options the VM tests set, as a tree ("*" = any name); anything else throws.
  nixosOptions = {
    boot.kernelPackages = true;
    security.lsm = true;
    users.users."*" = {
      isNormalUser = true;
      description = true;
    };
    environment.systemPackages = true;
    systemd.tmpfiles.rules = true;
    systemd.services."*" = {
      wantedBy = true;
      serviceConfig.ExecStart = true;
    };
    virtualisation = {
      memorySize = true;
      cores = true;
    };
  };
  checkOptions =
    path: spec: value:
    if spec == true then
      value
    else if !builtins.isAttrs value then
      throw "stand-in NixOS: ${path} is not an attribute set"
    else
      builtins.mapAttrs (
        key: child:
        let
          childSpec = spec.${key} or spec."*" or (throw "stand-in NixOS: option ${path}.${key} is not among the options checked against nixpkgs");
        in
        checkOptions "${path}.${key}" childSpec child
      ) value;

  self = {
    inherit lib system;
    pkgs = self;

    callPackage =
      fn: overrides:
      let
        f = if builtins.isFunction fn then fn else import fn;
        formals = builtins.functionArgs f;
        missing = builtins.filter (name: !formals.${name} && !(overrides ? ${name}) && !(self ? ${name})) (
          builtins.attrNames formals
        );
      in
      if missing != [ ] then
        throw "stand-in callPackage ${toString fn}: ${names missing} not in the stand-in package set"
      else
        f (builtins.intersectAttrs formals self // overrides);

    stdenv.mkDerivation =
      args:
      let
        checked = only "stdenv.mkDerivation" [
          "pname"
          "version"
          "src"
          "cargoDeps"
          "nativeBuildInputs"
          "buildInputs"
          "env"
          "buildPhase"
          "installPhase"
          "dontPatchShebangs"
        ] args;
        env = strings "stdenv.mkDerivation ${checked.pname}" (checked.env or { });
      in
      derivationFor "${checked.pname}-${checked.version}" (env // removeAttrs checked [ "env" ])
      // {
        inherit (checked) pname version;
        standIn = {
          builder = "stdenv.mkDerivation";
          inherit env;
          nativeBuildInputs = map nameOf (checked.nativeBuildInputs or [ ]);
        };
      };

    rustPlatform = {
      buildRustPackage =
        args:
        let
          checked = only "rustPlatform.buildRustPackage" [
            "pname"
            "version"
            "src"
            "cargoLock"
            "cargoBuildFlags"
            "nativeBuildInputs"
            "buildInputs"
            "env"
            "doCheck"
            "passthru"
            "meta"
          ] args;
          cargoLock = only "rustPlatform.buildRustPackage's cargoLock" [ "lockFile" ] checked.cargoLock;
          meta = only "meta" metaKeys (checked.meta or { });
          env = strings "rustPlatform.buildRustPackage ${checked.pname}" (checked.env or { });
          passthru = checked.passthru or { };
        in
        derivationFor "${checked.pname}-${checked.version}" (
          env
          // {
            inherit (checked) src;
            cargoDeps = self.rustPlatform.importCargoLock cargoLock;
            cargoBuildFlags = checked.cargoBuildFlags or [ ];
            nativeBuildInputs = checked.nativeBuildInputs or [ ];
            buildInputs = checked.buildInputs or [ ];
            doCheck = checked.doCheck or true;
          }
        )
        // passthru
        // {
          inherit (checked) pname version;
          inherit meta passthru;
          standIn = {
            builder = "rustPlatform.buildRustPackage";
            inherit env;
            doCheck = checked.doCheck or true;
            cargoBuildFlags = checked.cargoBuildFlags or [ ];
            lockFile = toString cargoLock.lockFile;
            nativeBuildInputs = map nameOf (checked.nativeBuildInputs or [ ]);
            buildInputs = map nameOf (checked.buildInputs or [ ]);
          };
        };
      importCargoLock =
        args:
        let
          checked = only "rustPlatform.importCargoLock" [ "lockFile" ] args;
        in
        derivationFor "cargo-vendor-dir" { lockFile = builtins.readFile checked.lockFile; };
      cargoSetupHook = package "cargo-setup-hook" null { };
    };

    mkShell =
      args:
      let
        checked = only "mkShell" [
          "packages"
          "env"
        ] args;
        env = strings "mkShell" (checked.env or { });
      in
      derivationFor "nix-shell" (env // { packages = checked.packages or [ ]; })
      // {
        standIn = {
          builder = "mkShell";
          inherit env;
          packages = map nameOf (checked.packages or [ ]);
        };
      };

    runCommand =
      name: env: script:
      derivationFor name (only "runCommand's environment" [ ] env // { buildCommand = script; });

    writeText = name: text: derivationFor name { inherit text; };

    symlinkJoin =
      args:
      let
        checked = only "symlinkJoin" [
          "name"
          "paths"
          "meta"
        ] args;
      in
      derivationFor checked.name { inherit (checked) paths; }
      // {
        meta = only "meta" metaKeys (checked.meta or { });
      };

    testers.runNixOSTest =
      test:
      let
        checked = only "testers.runNixOSTest" [
          "name"
          "nodes"
          "testScript"
        ] test;
        nodes = only "testers.runNixOSTest's nodes" [ "machine" ] checked.nodes;
        module =
          if builtins.isFunction nodes.machine then
            nodes.machine {
              config = throw "stand-in NixOS: the VM module reads config";
              inherit lib;
              pkgs = self;
            }
          else
            nodes.machine;
        config = checkOptions "nodes.machine" nixosOptions module;
        services = config.systemd.services or { };
      in
      derivationFor "vm-test-run-${checked.name}" { }
      // {
        standIn = {
          builder = "testers.runNixOSTest";
          inherit (checked) name testScript;
          kernelPackages = config.boot.kernelPackages.standInName;
          lsm = resolve (config.security.lsm or null);
          systemPackages = map nameOf (config.environment.systemPackages or [ ]);
          tmpfiles = config.systemd.tmpfiles.rules or [ ];
          users = builtins.mapAttrs (_: user: user) (config.users.users or { });
          services = builtins.mapAttrs (_: service: service.serviceConfig.ExecStart) services;
        };
      };

    # Interpreters and tools, with the attributes h reads.
    python3 = package "python3" "python3" { pythonVersion = "3.13"; };
    nodejs = package "nodejs" "node" { };
    bash = package "bash" "bash" { };
    lua5_4 = package "lua" "lua" { };
    cargo = package "cargo" "cargo" { };
    rustc = package "rustc" "rustc" { };
    clippy = package "clippy" "cargo-clippy" { };
    rustfmt = package "rustfmt" "rustfmt" { };
    jq = package "jq" "jq" { };
    strace = package "strace" "strace" { };
    hyperfine = package "hyperfine" "hyperfine" { };
    nixfmt = package "nixfmt" "nixfmt" { };
    nixfmt-tree = package "nixfmt-tree" "treefmt" { };
    # "h" (pkgs/by-name/h/h): the name an overlay of h must not take.
    h = package "h" "h" { };

    linuxPackages_6_1 = {
      standInName = "linuxPackages_6_1";
      kernel = package "linux" null { version = "6.1"; };
    };
    linuxPackages_latest = {
      standInName = "linuxPackages_latest";
      kernel = package "linux" null { version = "latest"; };
    };
  };
in
self
