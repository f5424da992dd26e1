# The four hosts, as data. Everything that differs between them in the Nix build lives here.
#
# `env` is what the host's build.rs hands to h-resolve (the shared `resolve/` crate): the exact
# /nix/store path of the interpreter whose runtime files go into the compiled-in landlock table.
# `H_STORE_ONLY=1` (set for every host in ./package.nix) makes resolution fail if any resolved
# path lies outside /nix/store, so nothing from /usr can leak into a Nix-built policy.
#
# `controls` maps the bare interpreters the case harness (testkit) starts for its control runs,
# and the cases run by name, to store paths; the VM tests link them as /usr/local/bin/NAME (the
# harness's PATH is /usr/local/bin:/usr/bin:/bin). hpython's harness names the interpreter its
# build resolved (a store path), so it needs no link. The hosts themselves use the store paths
# compiled into them.
#
# `probes` are the scripts the VM tests run directly, outside the case harness, on the kernel
# without landlock (see ./kernels.nix): with --allow-degraded, seccomp alone must still stop
# them. Each names what the sandboxed run must show and what the same script shows under the
# bare interpreter (`control`), so that a probe that proves nothing fails the test.
# `status` is the shell's exit status (159 = killed by SIGSYS), or "nonzero".
{
  lib,
  bash,
  lua5_4,
  nodejs,
  python3,
}:
let
  python = "${python3}/bin/python3";
  node = "${nodejs}/bin/node";
  bashExe = "${bash}/bin/bash";
  lua = "${lua5_4}/bin/lua";
in
{
  hlua = {
    description = "Run an untrusted Lua 5.4 script under h's sandbox (Lua embedded, vendored)";
    # mlua builds its vendored Lua 5.4 with the C compiler from stdenv: no interpreter to hand over.
    env = { };
    nativeBuildInputs = [ ];
    buildInputs = [ ];
    controls = {
      "lua5.4" = lua;
      lua = lua;
    };
    control = lua;
    probes = {
      environment = {
        script = ''print(os.getenv("H_SECRET"))'';
        stdout = "nil";
        control = "leak";
      };
      exec = {
        script = ''os.execute("echo pwned")'';
        lacks = "pwned";
        status = 159;
        stderr = "hlua: sandbox denied";
        control = "pwned";
      };
    };
  };

  hpython = {
    description = "Run an untrusted Python 3 script under h's sandbox (CPython embedded through pyo3)";
    env = {
      H_PYTHON = python;
      # pyo3's build script reads the interpreter's sysconfig; it must be the same python.
      PYO3_PYTHON = python;
    };
    nativeBuildInputs = [ python3 ];
    buildInputs = [ python3 ];
    controls = {
      python3 = python;
      "python${python3.pythonVersion}" = python;
    };
    control = python;
    probes = {
      environment = {
        script = ''
          import os
          print(os.environ.get("H_SECRET"))
        '';
        stdout = "None";
        control = "leak";
      };
      exec = {
        script = ''
          import os
          os.system("echo pwned")
        '';
        lacks = "pwned";
        status = 159;
        stderr = "hpython: sandbox denied";
        control = "pwned";
      };
      network = {
        script = ''
          import socket
          socket.create_connection(("127.0.0.1", 8000), timeout=5)
          print("connected")
        '';
        lacks = "connected";
        status = "nonzero";
        control = "connected";
      };
    };
  };

  hnode = {
    description = "Run an untrusted Node.js script under h's sandbox (node executed inside it)";
    env.H_NODE = node;
    nativeBuildInputs = [ ];
    buildInputs = [ ];
    controls = {
      node = node;
      nodejs = node;
    };
    control = node;
    probes = {
      environment = {
        script = "console.log(process.env.H_SECRET)";
        stdout = "undefined";
        control = "leak";
      };
      exec = {
        script = ''process.stdout.write(require("child_process").execSync("echo pwned").toString())'';
        lacks = "pwned";
        status = "nonzero";
        control = "pwned";
      };
      network = {
        script = ''
          const socket = require("net").connect(8000, "127.0.0.1", () => {
            console.log("connected");
            socket.end();
          });
          socket.on("error", (error) => {
            console.error(error.message);
            process.exit(3);
          });
        '';
        lacks = "connected";
        status = "nonzero";
        control = "connected";
      };
    };
  };

  hsh = {
    description = "Run an untrusted bash script under h's sandbox (bash executed inside it)";
    env.H_BASH = bashExe;
    nativeBuildInputs = [ ];
    buildInputs = [ ];
    controls = {
      bash = bashExe;
    };
    control = bashExe;
    probes = {
      environment = {
        script = ''echo "''${H_SECRET-unset}"'';
        stdout = "unset";
        control = "leak";
      };
      exec = {
        script = "/bin/sh -c 'echo pwned'";
        lacks = "pwned";
        status = "nonzero";
        control = "pwned";
      };
      network = {
        script = ''
          exec 3<>/dev/tcp/127.0.0.1/8000 && echo connected
        '';
        lacks = "connected";
        status = "nonzero";
        control = "connected";
      };
    };
  };
}
