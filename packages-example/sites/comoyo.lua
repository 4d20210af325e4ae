-- Site policy of a site with the classic comoyo layout: packages under
-- /comoyo/software by the Maven layout (the default), runtime dirs
-- hierarchical as /comoyo/runtime/<cell>/<user>/<service>/<instance>, and
-- instance configuration rendered into etc/ before every start.
local default = require("copkg.policy")

return {
  runtime_path = default.runtime_path_hierarchical,

  before_start = function(ctx)
    local lines = {
      "service=" .. ctx.service_name,
      "instance=" .. ctx.instance,
      "user=" .. ctx.user,
      "cell=" .. ctx.cell,
      "package=" .. ctx.package,
    }
    copkg.write_file(ctx.runtime_dir .. "/etc/instance.properties", table.concat(lines, "\n") .. "\n")
  end,
}
