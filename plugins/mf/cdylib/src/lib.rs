promax_plugin_api::export_plugin!(promax_mf::root_module);
