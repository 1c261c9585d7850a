# services.vouch-substituter: this machine's Nix substitutes only what a
# Vouch log vouches for (or, in report mode, everything, with what
# enforcing would refuse logged and counted).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.vouch-substituter;
  toml = pkgs.formats.toml { };
  policyFile = pkgs.writeText "vouch.policy" cfg.policy;
  clientConfig = {
    log_url = cfg.logUrl;
    policy_file = "${policyFile}";
    trusted_builders = cfg.trustedBuilders;
    required_builders = cfg.requiredBuilders;
    state_dir = "/var/lib/vouch-substituter";
    substituter = {
      mode = cfg.mode;
      upstreams = cfg.upstreams;
      listen = cfg.listen;
    };
  } // cfg.extraSettings;
  configFile = toml.generate "vouch-client.toml" clientConfig;
in
{
  options.services.vouch-substituter = {
    enable = lib.mkEnableOption "the Vouch verifying substituter for this machine's Nix";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.vouch or (pkgs.callPackage ../package.nix { });
      description = "The package providing vouch.";
    };

    logUrl = lib.mkOption {
      type = lib.types.str;
      example = "https://log.example.org/vouch";
      description = "The Vouch log's URL.";
    };

    policy = lib.mkOption {
      type = lib.types.lines;
      example = "log log.example.org/vouch+1234abcd+AB...\nquorum none\n";
      description = "The C2SP tlog-policy naming the log's key, the witnesses and the quorum (`vouch policy` prints one).";
    };

    trustedBuilders = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      example = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      description = "Builder keys (Nix name:base64) whose attestations count.";
    };

    requiredBuilders = lib.mkOption {
      type = lib.types.ints.positive;
      default = 1;
      description = "How many distinct trusted builders must agree on a NAR.";
    };

    upstreams = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "https://cache.nixos.org" ];
      description = "The binary caches the substituter fetches from.";
    };

    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:8082";
      description = "Address the substituter listens on (Nix's substituter URL).";
    };

    mode = lib.mkOption {
      type = lib.types.enum [ "enforce" "report" ];
      default = "report";
      description = ''
        report: serve everything the upstreams have and log what enforcing
        would refuse (start here); enforce: serve only what the log vouches for.
      '';
    };

    replaceSubstituters = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Make the substituter Nix's only substituter (otherwise Nix may fetch
        from the upstreams directly, around Vouch). trusted-public-keys are
        left as they are: Nix still checks the narinfo's signatures.
      '';
    };

    extraSettings = lib.mkOption {
      type = toml.type;
      default = { };
      description = "More client configuration keys (README, \"Client configuration\").";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.vouch-substituter = {
      description = "Vouch substituter: serves Nix only substitutes a transparency log vouches for";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      before = [ "nix-daemon.service" ];
      environment.VOUCH_LOG = "info";
      serviceConfig = (import ./hardening.nix) // {
        Type = "notify";
        ExecStart = "${cfg.package}/bin/vouch substituter --config ${configFile}";
        Restart = "on-failure";
        RestartSec = "2s";
        DynamicUser = true;
        StateDirectory = "vouch-substituter";
        StateDirectoryMode = "0700";
        CapabilityBoundingSet = "";
      };
    };
    nix.settings.substituters =
      if cfg.replaceSubstituters
      then lib.mkForce [ "http://${cfg.listen}" ]
      else lib.mkBefore [ "http://${cfg.listen}" ];
  };
}
