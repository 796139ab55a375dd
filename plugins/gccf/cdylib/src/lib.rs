promax_plugin_api::export_plugin!(promax_gccf::root_module);
