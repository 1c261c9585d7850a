# services.vouch-builder: attest everything this machine builds (Nix's
# post-build hook, which never blocks or fails a build) and deliver the
# attestations to a Vouch log.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.vouch-builder;
  hook = pkgs.writeShellScript "vouch-post-build-hook" ''
    exec ${cfg.package}/bin/vouch post-build-hook --key ${lib.escapeShellArg (toString cfg.keyFile)} --spool ${lib.escapeShellArg cfg.spool}
  '';
in
{
  options.services.vouch-builder = {
    enable = lib.mkEnableOption "Vouch attestations of this machine's builds";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.vouch or (pkgs.callPackage ../package.nix { });
      description = "The package providing vouch.";
    };

    keyFile = lib.mkOption {
      type = lib.types.path;
      example = "/etc/nix/builder.sec";
      description = "The builder's Nix secret key (`nix key generate-secret` or `vouch keygen`), outside the Nix store.";
    };

    logUrl = lib.mkOption {
      type = lib.types.str;
      example = "https://log.example.org/vouch";
      description = "The Vouch log the sender delivers to.";
    };

    spool = lib.mkOption {
      type = lib.types.str;
      default = "/var/spool/vouch";
      description = "Where the hook leaves attestations for the sender.";
    };
  };

  config = lib.mkIf cfg.enable {
    nix.settings.post-build-hook = hook;
    systemd.tmpfiles.rules = [ "d ${cfg.spool} 0700 root root -" ];
    systemd.services.vouch-sender = {
      description = "Vouch sender: delivers spooled build attestations to a Vouch log";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment.VOUCH_LOG = "info";
      serviceConfig = (import ./hardening.nix) // {
        ExecStart = "${cfg.package}/bin/vouch sender --log ${lib.escapeShellArg cfg.logUrl} --spool ${lib.escapeShellArg cfg.spool}";
        Restart = "always";
        RestartSec = "10s";
        ReadWritePaths = [ cfg.spool ];
        CapabilityBoundingSet = "";
      };
    };
  };
}
