-- Site policy for a site that publishes to a Nexus/Artifactory "raw"
-- repository with a flat layout, <artifact>/<version>/<artifact>-<version>.tgz,
-- and installs packages by artifact name only: /opt/apps/<artifact>/<version>.
-- `copkg pack` honours the same layout, so packs go straight to the repo.
return {
  -- No `zip`: this repository never held the original copkg's .zip
  -- packages, so a missing .tgz is "not found" without asking for one.
  repository_paths = function(pkg)
    local archive = pkg.artifact .. "/" .. pkg.version .. "/" .. pkg.artifact .. "-" .. pkg.version .. ".tgz"
    return { archive = archive, sha256 = archive .. ".sha256" }
  end,

  install_path = function(pkg)
    return pkg.artifact .. "/" .. pkg.version
  end,
}
