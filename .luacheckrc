-- luacheck configuration for copkg's Lua: the built-in policy, the LuaCATS
-- annotations, and the example packages and site scripts.
std = "lua54"
read_globals = { "copkg" }
max_line_length = 120

files["lua/copkg.d.lua"] = {
  -- The annotation file declares the module: stubs with unused parameters.
  globals = { "copkg" },
  unused_args = false,
}

files["lua/policy.lua"] = {
  -- Default lifecycle hooks take the context and do nothing with it.
  unused_args = false,
}
