"""The cost of --leak-report: the flow executor's throughput untraced, with one worker in four
traced (the recommended setting) and with every worker traced."""
from bench.flow import FLOW_APP, FLOW_BODY, POST_LUA
from bench.load import Load, measure
from bench.report import servers_footer, table
from bench.servers import rotor_app


def scenario_leak_report(args):
    workers = 4
    servers = [rotor_app("rotor", FLOW_APP, "app:app", workers),
               rotor_app("rotor --leak-report --leak-report-every 4", FLOW_APP, "app:app",
                         workers, "--leak-report", "--leak-report-every", "4"),
               rotor_app("rotor --leak-report (every worker)", FLOW_APP, "app:app", workers,
                         "--leak-report")]
    loads = [Load(s.name, s, script=POST_LUA, script_args=[FLOW_BODY]) for s in servers]
    rows = measure(servers, args, path="/run", loads=loads)
    table(f"leak-report: POST /run of the flow executor (flows/{FLOW_BODY.name}), {workers} "
          "workers, without and with tracemalloc", rows, "rotor", args.rounds)
    servers_footer(servers)
