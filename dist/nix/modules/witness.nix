# services.vouch-witness: a C2SP tlog-witness for Vouch (and other) logs.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.vouch-witness;
  toml = pkgs.formats.toml { };
  settings = {
    key_file = "/run/credentials/vouch-witness.service/witness.key";
    data_dir = "/var/lib/vouch-witness";
    listen = "127.0.0.1:8081";
  } // cfg.settings;
  configFile = toml.generate "vouch-witness.toml" settings;
in
{
  options.services.vouch-witness = {
    enable = lib.mkEnableOption "the Vouch witness (vouch-witness serve)";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.vouch or (pkgs.callPackage ../package.nix { });
      description = "The package providing vouch-witness.";
    };

    keyFile = lib.mkOption {
      type = lib.types.path;
      example = "/etc/vouch/witness.key";
      description = ''
        The witness's private key, from `vouch-witness keygen` (kept outside
        the Nix store; systemd hands the service a private copy).
      '';
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = {
        log = [{ origin = "log.example.org/vouch"; vkeys = [ "log.example.org/vouch+..." ]; url = "https://log.example.org/vouch"; }];
      };
      description = "vouch-witness configuration (README, \"Running a witness and a monitor\").";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.vouch-witness = {
      description = "Vouch witness: cosigns transparency log checkpoints";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment.VOUCH_LOG = "info";
      serviceConfig = (import ./hardening.nix) // {
        Type = "notify";
        ExecStart = "${cfg.package}/bin/vouch-witness serve --config ${configFile}";
        LoadCredential = [ "witness.key:${toString cfg.keyFile}" ];
        Restart = "on-failure";
        RestartSec = "5s";
        DynamicUser = true;
        StateDirectory = "vouch-witness";
        StateDirectoryMode = "0700";
        CapabilityBoundingSet = "";
      };
    };
  };
}
