promax_plugin_api::export_plugin!(promax_lightgcn::root_module);
