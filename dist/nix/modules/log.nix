# services.vouch-log: a Vouch transparency log.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.vouch-log;
  toml = pkgs.formats.toml { };
  settings = { listen = "127.0.0.1:8080"; } // cfg.settings;
  configFile = toml.generate "vouch-log.toml" settings;
  port = lib.toInt (lib.last (lib.splitString ":" settings.listen));
in
{
  options.services.vouch-log = {
    enable = lib.mkEnableOption "the Vouch transparency log (vouch-log)";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.vouch or (pkgs.callPackage ../package.nix { });
      description = "The package providing vouch-log.";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = { origin = "log.example.org/vouch"; listen = "0.0.0.0:8080"; trusted_proxies = [ "127.0.0.1" ]; };
      description = ''
        vouch-log configuration (every key and its default: README,
        "Running the log"). The data directory is /var/lib/vouch-log; the
        signing key is created there on first start unless key_file names one.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the listening port in the firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.vouch-log = {
      description = "Vouch transparency log for Nix build attestations";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment.VOUCH_LOG = "info";
      serviceConfig = (import ./hardening.nix) // {
        Type = "notify";
        ExecStart = "${cfg.package}/bin/vouch-log serve --config ${configFile} --data-dir /var/lib/vouch-log";
        Restart = "on-failure";
        RestartSec = "5s";
        TimeoutStopSec = "60s";
        DynamicUser = true;
        StateDirectory = "vouch-log";
        StateDirectoryMode = "0700";
        LimitNOFILE = 65536;
        CapabilityBoundingSet = "";
      };
    };
    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ port ];
  };
}
