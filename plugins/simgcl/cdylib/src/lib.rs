promax_plugin_api::export_plugin!(promax_simgcl::root_module);
