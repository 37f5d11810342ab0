"""adieyal's comfyui-dynamicprompts, under the pack's class names, inputs and outputs, running the
Dynamic Prompts template language ({a|b} variants, {2$$a|b|c} ranges, __wildcards__, ${variables})
with the `dynamicprompts` library the pack wraps (PyPI; repo adieyal/dynamicprompts, read at 0.31.0).

Read from adieyal/comfyui-dynamicprompts: nodes/__init__.py at 50f720d057ca36977bfac6a116e08e25f8bbb17d
(NODE_CLASS_MAPPINGS), nodes/sampler.py at 66f6ff2d224bb86cd1e62bef1f571a6d04df04c8 (the newest the
store holds: text, seed, autorefresh; the prompt generator kept per node and reseeded each run),
nodes/random.py and nodes/combinatorial.py as the store's files 31806424616 and 31832610971 hold them
(a SamplingContext with SamplingMethod.RANDOM / COMBINATORIAL over the wildcards folder),
nodes/output_node.py at 83db0a983459978161adf764160e7d9aea186ec9, nodes/string.py at
ebca20a8f020412902d0ef92b7eb09ecd8aa8005, nodes/jinja.py, nodes/feeling_lucky.py and
nodes/magicprompt.py at 5da73bbe60af88c3728b37f8534e3293ac705210 / 50f720d057ca36977bfac6a116e08e25f8bbb17d.

Nodes: DPRandomGenerator, DPCombinatorialGenerator, DPOutput, DPMultilineString.
Left out, refused by name (comfy_format.CUSTOM_PACKS and LEFT_OUT say why):
- DPJinja: the library renders the template with a plain jinja2.Environment, not jinja2's sandbox,
  so a user's template could reach Python objects (a template must never run code here);
- DPFeelingLucky: it asks a web service (lexica.art) for prompts;
- DPMagicPrompt: it downloads a GPT-2 prompt model from the Hugging Face hub.
The pack has no max_prompts input (the combinatorial node gives one prompt a run, in turn).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import random
import threading
from collections import OrderedDict

from graphflow.api import STRING, Choice, ComfyAlias, Int, Node, NodeInputError, Text, check_interrupted, \
    current_node_id, show, warn
from nodes.pack_nodes_impact import wildcard_files, wildcards_state
from nodes.sampling import SEED_MAX
from nodes.strings import MAX_TEXT, fits

COMFY_PACK = "comfyui-dynamicprompts"  # the custom node pack this module's ComfyUI classes come from

DYNAMIC_PROMPTS_EXTENSIONS = (".txt", ".json", ".yaml")  # the library's wildcard files (it skips .yml)
# Characters of text. The library's template parser is not counted by the step budget and takes
# up to about 0.5 ms a character of dense syntax ({a|b}{a|b}...: 4 s for 8,000 characters on a
# busy two-core machine, 10-19 s for 20,000); parsed templates are kept by text (TEMPLATES_KEPT).
MAX_TEMPLATE = 8_000
TEMPLATES_KEPT = 16
# Work a run may do, counted in the library's steps (a generator made for one part of the
# template: some 50,000 to 80,000 a second) plus PARSE_STEPS per character of each wildcard line with template syntax
# it parses, one step per VALUES_PER_STEP wildcard values (and files) it gathers for a wildcard
# name, one per COMPARISONS_PER_STEP options it compares for a range and one per CHARS_PER_STEP
# characters of each part's text it joins. A combinatorial range whose choices come out equal
# ({6$$...} of variants giving the same words) otherwise searches every combination for one that
# differs, for hours.
MAX_STEPS = 200_000
PARSE_STEPS = 10
VALUES_PER_STEP = 16
COMPARISONS_PER_STEP = 64
CHARS_PER_STEP = 1000
MAX_NODES_KEPT = 1000  # nodes whose prompt generator is kept (the oldest dropped)


class _TooMuchWork(Exception):
    pass


class _TooLong(Exception):
    pass


@dataclasses.dataclass
class _Budget:
    """One run's work: the steps left, the wildcard lines parsed so far (each parsed and counted
    once a run), the wildcards found with no lines and those warned of."""
    left: int
    parsed: dict = dataclasses.field(default_factory=dict)
    empty_wildcards: list = dataclasses.field(default_factory=list)
    warned: set = dataclasses.field(default_factory=set)

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise _TooMuchWork
        if self.left % 10_000 < steps:  # now and then (and at each big charge): a long run can be stopped
            check_interrupted()


# The budget of the run in this thread: the library's generators run inside next(), so the parts
# made by an earlier run (a combinatorial node's) count against the run that resumes them.
_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("dynamic_prompts_budget")


def _spend(steps: int) -> None:
    _budget.get().spend(steps)


def _measured(results):
    """A part's results, each counted by its length and refused over MAX_TEXT as it is made (nested
    variables that double a text each would otherwise build gigabytes before the end)."""
    for result in results:
        _spend(len(result.text) // CHARS_PER_STEP)
        if len(result.text) > MAX_TEXT:
            raise _TooLong
        yield result


@functools.cache
def _counted_context():
    """The library's SamplingContext, counting its work against the run's _Budget (its
    sub-contexts are made by dataclasses.replace, so they count too)."""
    from dynamicprompts.sampling_context import SamplingContext

    @dataclasses.dataclass(frozen=True)
    class CountedContext(SamplingContext):
        def generator_from_command(self, command):
            _spend(1)
            return _measured(super().generator_from_command(command))

        def sample_prompts(self, prompt, num_prompts=None):
            from pyparsing import ParseBaseException

            # at least a step a call: a weighted empty line ("2::") gives no prompt, and the
            # library's random wildcard sampler asks again for ever
            _spend(1 + (PARSE_STEPS * len(prompt) if isinstance(prompt, str) else 0))
            try:
                return super().sample_prompts(prompt, num_prompts)
            except ParseBaseException as e:  # a wildcard line's or variable's text, not the template's
                raise NodeInputError("text", f"a wildcard line {str(prompt)[:80]!r} is not valid template "
                                             f"syntax: {e}") from None

    return CountedContext


# Characters the template parser reads as themselves anywhere in a line (tested against it): a
# wildcard line of only these and letters, digits and spaces parses to LiteralCommand(line), so a
# range over a long plain list (artists, colours) skips the parser (some 25,000 characters a second).
# ("/" is not among them: the parser drops // and /* */ comments)
PLAIN_PUNCTUATION = frozenset("!\"&'()*+,-.:;=?")


def _plain(line: str) -> bool:
    return bool(line) and all(c.isalnum() or c == " " or c in PLAIN_PUNCTUATION for c in line)


def _wildcard_range(command, context):
    """{2$$__name__}: a range over the wildcard's lines, made as the library's wildcard_to_variant
    makes it (which parses every line each time, uncounted), each line parsed once a run and
    counted; a wildcard with no lines is noted for the error that follows."""
    from dynamicprompts.commands import LiteralCommand, VariantCommand, VariantOption
    from dynamicprompts.parser.parse import parse
    from pyparsing import ParseBaseException

    wildcard, budget = command.values[0], _budget.get()
    name = next(iter(context.sample_prompts(wildcard.wildcard, 1))).text
    values = context.wildcard_manager.get_values(name)
    if not values:
        budget.empty_wildcards.append(name)
    options = []
    for line in values.iterate_string_values_weighted():  # a line weighted 5:: five times
        budget.spend(1)
        if line not in budget.parsed and _plain(line):  # the parser's own result, without its cost
            budget.parsed[line] = LiteralCommand(line)
        elif line not in budget.parsed:
            budget.spend(PARSE_STEPS * len(line))
            try:
                budget.parsed[line] = parse(line, parser_config=context.parser_config)
            except ParseBaseException as e:
                raise NodeInputError("text", f"a line of wildcard __{name}__ ({line[:80]!r}) is not valid template "
                                             f"syntax: {e}") from None
        options.append(VariantOption(budget.parsed[line]))
    return VariantCommand(options, min(command.min_bound, len(values)), min(command.max_bound, len(values)),
                          command.separator, wildcard.sampling_method)


def _resolved(command, context):
    """A variant command with its wildcard ranges made (a wildcard line may be one itself)."""
    from dynamicprompts.commands import WildcardCommand

    while len(command.values) == 1 and isinstance(command.values[0], WildcardCommand):
        command = _wildcard_range(command, context)
    return command


def _distinct_count(values, at_most: int) -> int:
    """How many of values differ, as the library's get_value_combinations tells them apart (==),
    counted up to at_most."""
    distinct: list = []
    for value in values:
        if len(distinct) >= at_most:
            break
        _spend(1 + len(distinct) // COMPARISONS_PER_STEP)
        if all(value != seen for seen in distinct):
            distinct.append(value)
    return len(distinct)


def _within_distinct(command):
    """command with its range cut to the number of options that differ: the library finds no
    combination of more, after searching every ordering of the options for one ({9$$...} of
    eight words written three times each: 3^8 * 8! orderings); no options where even its least
    count can't be made."""
    if not command.values:
        return command
    command = command.adjust_range()
    distinct = _distinct_count(command.values, command.max_bound)
    if distinct < command.min_bound:
        return dataclasses.replace(command, variants=[])
    return dataclasses.replace(command, max_bound=min(command.max_bound, distinct))


@functools.cache
def _samplers() -> dict:
    """The library's samplers, with their {n$$...} ranges made through _resolved (counted wildcard
    lines) and, where they search combinations, _within_distinct. The library's cyclical sampler
    spins forever, counting nothing, on a {@2$$a|a} range that has no combination: refused."""
    from dynamicprompts.enums import SamplingMethod
    from dynamicprompts.samplers.combinatorial import CombinatorialSampler
    from dynamicprompts.samplers.cycle import CyclicalSampler
    from dynamicprompts.samplers.random import RandomSampler

    class Random(RandomSampler):
        def _get_variant(self, command, context):
            yield from super()._get_variant(_resolved(command, context), context)

    class Combinatorial(CombinatorialSampler):
        def _get_variant(self, command, context):
            yield from super()._get_variant(_within_distinct(_resolved(command, context)), context)

    class Cyclical(CyclicalSampler):
        def _get_variant(self, command, context):
            command = _resolved(command, context)
            options = _within_distinct(command)
            if command.values and not options.values:
                needed = command.adjust_range().min_bound
                raise NodeInputError("text", f"a cyclical {{@{needed}$$...}} range needs {needed} options "
                                             f"that differ; it has fewer")
            yield from super()._get_variant(options, context)

    return {SamplingMethod.RANDOM: Random(), SamplingMethod.COMBINATORIAL: Combinatorial(),
            SamplingMethod.CYCLICAL: Cyclical()}


# -- wildcards -------------------------------------------------------------------------------------

_manager: tuple[str, object] = ("", None)  # (wildcards_state, WildcardManager) of the last build
_manager_lock = threading.Lock()


def _collections(base, path) -> dict:
    """{wildcard name: collection} of one file, named as the library's folder walk names them: a
    .txt file by its path in the folder without extension, a .json / .yaml file's keys under its
    folder's path."""
    from dynamicprompts.wildcards.collection import WildcardTextFile
    from dynamicprompts.wildcards.collection.structured import parse_structured_file

    relative = path.relative_to(base)
    if path.suffix == ".txt":
        return {relative.with_suffix("").as_posix(): WildcardTextFile(path)}
    prefix = "" if relative.parent.as_posix() == "." else relative.parent.as_posix() + "/"
    try:
        return {prefix + name: collection for name, collection in parse_structured_file(path)}
    except Exception as e:  # the library's folder walk skips an unreadable file with a warning too
        warn(f"wildcard file {relative.as_posix()} skipped: {e}")
        return {}


@functools.cache
def _folder_wildcards():
    """The library's WildcardManager, counting the values it gathers for a name (a glob like
    __**__ gathers every file's lines: charged whether or not the library's cache holds them, so
    that a refusal does not depend on what ran before) and telling the user (warn, once a run) of a
    wildcard no file has, which the library leaves in the prompt as written. The library's own log
    lines for it (a traceback for a name with '..') are left out: the warning says it."""
    from dynamicprompts.wildcards import WildcardManager

    logging.getLogger("dynamicprompts").setLevel(logging.ERROR)

    class FolderWildcards(WildcardManager):
        collection_count = 0  # the files and keys it holds: a glob is matched against each

        def get_values(self, wildcard):
            values = super().get_values(wildcard)
            budget = _budget.get(None)  # None: used outside a node's run (tests)
            if budget is not None:
                # a weighted line counts its weight: the library's cyclical and combinatorial
                # samplers repeat it that many times ("1e7::x" built 3 GB of generators)
                weights = (getattr(item, "weight", 1) for item in values.items)
                count = sum(min(w, 1e12) if isinstance(w, (int, float)) and w == w else 1 for w in weights)
                budget.spend(int(self.collection_count + max(count, len(values))) // VALUES_PER_STEP)
            if not values and (budget is None or wildcard not in budget.warned):
                if budget is not None:
                    budget.warned.add(wildcard)
                why = " (a name with '..' is never looked up)" if ".." in wildcard else ""
                warn(f"the wildcards folders have no lines for {wildcard!r} (no file or key of that name{why}, "
                     f"or only comments): __{wildcard}__ is left in the prompt as written")
            return values

    return FolderWildcards


def wildcard_manager():
    """The library's WildcardManager over the files of graphflow's wildcards model folders (the
    Impact Pack nodes' folders), the first folder (the user's) winning a name, and, as the
    library's folder walk, no file in a folder whose name starts with "." (.git, .cache). It is
    given the files found by graphflow's folder walk, not a folder to walk, so it knows only files
    inside those folders (and the library refuses a name with '..'). Built anew when a file
    changes."""
    global _manager
    state = wildcards_state(DYNAMIC_PROMPTS_EXTENSIONS)
    with _manager_lock:
        if _manager[0] != state or _manager[1] is None:
            found: dict = {}
            for base, path in reversed(list(wildcard_files(DYNAMIC_PROMPTS_EXTENSIONS))):
                if not any(part.startswith(".") for part in path.relative_to(base).parent.parts):
                    found.update(_collections(base, path))
            manager = _folder_wildcards()(root_map={"": [found]})
            manager.collection_count = len(found)
            _manager = (state, manager)
        return _manager[1]


# -- sampling ----------------------------------------------------------------------------------------


def _checked_template(text: str) -> None:
    if len(text) > MAX_TEMPLATE:
        raise NodeInputError("text", f"the template is {len(text):,} characters long; the limit is "
                                     f"{MAX_TEMPLATE:,} (the template parser is slow on long texts)")


@functools.lru_cache(maxsize=TEMPLATES_KEPT)
def _parsed_template(text: str):
    """The library's parse of a template (its commands are frozen dataclasses, shared safely)."""
    from dynamicprompts.parser.parse import parse

    return parse(text)


@dataclasses.dataclass
class _Cycle:
    """A node's prompt generator, kept between runs as the pack keeps its own (one at a time: lock)."""
    text: str
    manager: object
    rand: random.Random
    context: object
    prompts: object = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


_cycles: OrderedDict[tuple, _Cycle] = OrderedDict()  # (node type, node id) -> its generator; kept while graphflow runs
_cycles_lock = threading.Lock()


def _cycle(key: tuple, method: str, text: str, manager) -> _Cycle:
    from dynamicprompts.enums import SamplingMethod

    with _cycles_lock:
        cycle = _cycles.pop(key, None)
        if cycle is None or cycle.text != text or cycle.manager is not manager:
            rand = random.Random()
            context = _counted_context()(default_sampling_method=SamplingMethod[method], wildcard_manager=manager,
                                         rand=rand, samplers=_samplers())
            cycle = _Cycle(text, manager, rand, context)
        _cycles[key] = cycle
        while len(_cycles) > MAX_NODES_KEPT:
            _cycles.popitem(last=False)
        return cycle


def _next_prompt(cycle: _Cycle, budget: _Budget) -> str:
    """The next prompt of the cycle's generator (made on the first call) as text, counted against
    the run's budget; the library's errors as errors naming text. StopIteration when it has no more."""
    from pyparsing import ParseBaseException

    token = _budget.set(budget)
    try:
        if cycle.prompts is None:
            cycle.prompts = cycle.context.sample_prompts(_parsed_template(cycle.text))
        prompt = str(next(cycle.prompts))
    except ParseBaseException as e:
        raise NodeInputError("text", f"not a Dynamic Prompts template: {e}") from None
    except _TooMuchWork:
        raise NodeInputError("text", f"the template takes more than {MAX_STEPS:,} sampling steps for one "
                                     f"prompt (a combinatorial range whose choices come out the same, or "
                                     f"wildcards that nest very deep or have very many lines)") from None
    except _TooLong:
        raise NodeInputError("text", f"a part of the prompt would be over {MAX_TEXT:,} characters long "
                                     f"(variables that repeat each other)") from None
    except RecursionError:
        raise NodeInputError("text", "the template nests too deep, or a variable or wildcard refers to "
                                     "itself") from None
    except NotImplementedError as e:  # ${a=...} sampled as a value: a template that only sets one
        what = "a variable is set (${name=...}) where text is expected" if "Variable" in str(e) else str(e)
        raise NodeInputError("text", f"the Dynamic Prompts library can't sample this template: {what}") from None
    except RuntimeError as e:  # a part that gives nothing inside one that needs a value from it
        if not isinstance(e.__cause__, StopIteration):
            raise
        named = ", ".join(f"__{name}__" for name in dict.fromkeys(budget.empty_wildcards))
        raise NodeInputError("text", f"the wildcard {named} has no lines (no file or key has that name, or its "
                                     f"lines are all comments), so its {{n$$...}} range gives nothing" if named
                             else "a part of the template gives no text at all") from None
    except NodeInputError:
        raise
    except (KeyError, ValueError) as e:  # an undefined ${variable}, a bad wildcard name or range
        raise NodeInputError("text", str(e.args[0] if e.args else e)) from None
    finally:
        _budget.reset(token)
    fits(len(prompt), "text")
    return prompt


def next_prompt(method: str, key: tuple, text: str, seed: int) -> str:
    """The pack's get_prompt for the node keyed key (node type, node id), its sampling method
    "RANDOM" or "COMBINATORIAL": the node's generator of the template's prompts is kept between
    runs (a new one for a changed text or changed wildcard files); seed > 0 reseeds its random
    draws before each prompt; after the last prompt it starts again, and a template that gives no
    prompt at all gives ""."""
    if text.strip() == "":
        return ""
    _checked_template(text)
    cycle = _cycle(key, method, text, wildcard_manager())
    budget = _Budget(MAX_STEPS)
    with cycle.lock:  # the server runs workflows in threads: one prompt at a time from a generator
        if seed > 0:
            cycle.rand.seed(seed)
        for _ in range(2):  # after the last prompt, once more from the first
            try:
                return _next_prompt(cycle, budget)
            except StopIteration:
                cycle.prompts = None
            except BaseException:
                cycle.prompts = None  # a generator that raised is spent
                raise
    return ""


# -- nodes ---------------------------------------------------------------------------------------------


class DynamicPromptsRandom(Node):
    """Random Prompts (Dynamic Prompts): one prompt drawn from a template each run. {a|b|c} picks
    one, {2$$a|b|c} two different ones (joined by ","), {1-3$$ and $$a|b|c} one to three joined
    by " and ", {0.5::a|2::b} weighs them, __name__ picks a line of the wildcard file name.txt
    under the models' wildcards folder (or the list under the key name of a .json / .yaml file
    there, not in a folder whose name starts with "."; __shapes/*__ any of the folder shapes),
    ${name={a|b}} and ${name} are variables, __name(var=x)__ passes one on. autorefresh changes
    nothing (the pack re-runs the node whatever it says).

    As in the pack, the node keeps its prompt generator between runs (while graphflow runs; a
    changed text or wildcard file makes a new one), re-runs each time, and with seed above 0
    reseeds its random draws before each prompt: its first prompt is the library's
    RandomPromptGenerator's with that seed. (In the pack every Dynamic Prompts node draws from one
    generator of the whole process, so a seed-0 node queued after a seeded one continues the
    seeded draws; here each node has its own.) The seed does not reset a weighted wildcard (a .json /
    .yaml list with 2::line weights, drawn ten lines at a time) or an immediate variable
    ${v=!{a|b}} (drawn once, when the generator is made): with one of them the same seed gives
    different prompts from run to run, and with seed 0 an immediate variable keeps its value for
    as long as the text stays the same.

    An empty text gives "" (so does a template that gives no prompt at all, as in the pack); bad
    template syntax, an undefined variable, a text longer than 8,000 characters, a prompt needing
    more than 200,000 sampling steps or a part over 10,000,000 characters, a {2$$__name__} range
    over a wildcard with no lines inside other text, and a cyclical {@2$$a|a} range without enough
    options that differ (the library would search forever) are refused naming text. A wildcard name
    that no file has is left in the prompt as written, as the library does, with a warning."""
    category = "Dynamic Prompts"
    display_name = "Random Prompts"
    text: str = Text("", multiline=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    autorefresh: str = Choice(("Yes", "No"), "No")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DPRandomGenerator",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # the generator's next prompt each run, as the pack's

    def run(self):
        return next_prompt("RANDOM", (self.node_type, current_node_id()), self.text, self.seed)


class DynamicPromptsCombinatorial(Node):
    """Combinatorial Prompts (Dynamic Prompts): every prompt a template makes, one each run, in
    the library's order ({a|b} {c|d}: "a c", "a d", "b c", "b d"), starting again after the last
    (each node keeps its place while graphflow runs; a changed text or wildcard file starts it
    from the first). Same template language as Random Prompts; a {~a|b} part is drawn at random,
    with the seed reset before each prompt when seed is above 0. autorefresh changes nothing, as
    in the pack. The pack has no prompt count: queue the workflow as many times as you want prompts.

    An empty text gives ""; the same templates as in Random Prompts are refused naming text."""
    category = "Dynamic Prompts"
    display_name = "Combinatorial Prompts"
    text: str = Text("", multiline=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    autorefresh: str = Choice(("Yes", "No"), "No")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DPCombinatorialGenerator",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # the next prompt each run

    def run(self):
        return next_prompt("COMBINATORIAL", (self.node_type, current_node_id()), self.text, self.seed)


class DynamicPromptsOutput(Node):
    """OutputString (Dynamic Prompts): shows a text on the node, as the pack's DPOutput does."""
    category = "utils"
    display_name = "OutputString"
    output_node = True
    string: str = Text("")
    comfy = ComfyAlias(("DPOutput",))

    def run(self):
        show(string=[self.string])


class DynamicPromptsMultilineString(Node):
    """Multiline String (Dynamic Prompts): gives its text as written; the editor does not resolve
    {a|b} in it (the pack turns that off)."""
    category = "utils"
    display_name = "Multiline String"
    string: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("DPMultilineString",))

    def run(self):
        return self.string
