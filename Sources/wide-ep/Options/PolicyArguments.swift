import ArgumentParser
import WideEPCore

// Command-line spellings of the core policies: their raw values (`none`, `greedy`, `deepseek`, `balanced`;
// `even`, `balanced`). Declared once here for every command.
extension PlannerPolicy: ExpressibleByArgument {}
extension SplitPolicy: ExpressibleByArgument {}
