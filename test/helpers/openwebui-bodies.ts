/**
 * Request bodies as Open WebUI 0.12 sends them to an OpenAI-compatible connection: a user's
 * chat (its history, optionally with the RAG template put in front of the user's question, as
 * Open WebUI does by default), and its background tasks (title, tags, follow-ups, queries), each
 * one user message holding its default task template filled in with the chat history
 * (open_webui/config.py DEFAULT_*_PROMPT_TEMPLATE, utils/task.py). The `task` metadata Open
 * WebUI keeps for itself never reaches the connection.
 */

export interface Turn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** How the task templates render {{MESSAGES:END:n}}: one "ROLE: text" line per message. */
function history(turns: readonly Turn[], last: number): string {
  return turns
    .filter((turn) => turn.role !== 'system')
    .slice(-last)
    .map((turn) => `${turn.role.toUpperCase()}: ${turn.content}`)
    .join('\n');
}

const TEMPLATES = {
  title: (turns: readonly Turn[]) => `### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Keep it short: 2-4 words is best.
- Do not use emojis, quotation marks, or special formatting.
- Write the title in the chat's primary language; default to English if multilingual.
- Prioritize accuracy over creativity.
- Your entire response must consist solely of the JSON object, without any introductory or concluding text.
- The output must be a single, raw JSON object, without any markdown code fences or other encapsulating text.
- Ensure no conversational text, affirmations, or explanations precede or follow the raw JSON output, as this will cause direct parsing failure.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "Stock Trends" },
- { "title": "Chocolate Chip Cookies" },
- { "title": "Music Streaming" },
- { "title": "Remote Work" }
### Chat History:
<chat_history>
${history(turns, 2)}
</chat_history>`,
  tags: (turns: readonly Turn[]) => `### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Guidelines:
- Start with high-level domains (e.g. Science, Technology, Philosophy, Arts, Politics, Business, Health, Sports, Entertainment, Education)
- Consider including relevant subfields/subdomains if they are strongly represented throughout the conversation
- If content is too short (less than 3 messages) or too diverse, use only ["General"]
- Use the chat's primary language; default to English if multilingual
- Prioritize accuracy over specificity

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }

### Chat History:
<chat_history>
${history(turns, 6)}
</chat_history>`,
  followUps: (turns: readonly Turn[]) => `### Task:
Predict 3-5 useful messages this user might naturally send next to advance their current objective.
### Guidelines:
- Write from the user's point of view, directed to the assistant. Match the user's directness, brevity, vocabulary, and latest language; do not deliberately copy typos.
- Response must be a JSON object with a "follow_ups" key containing an array of strings, no extra text or formatting.
### Output:
JSON format: { "follow_ups": ["Suggested next message 1", "Suggested next message 2", "Suggested next message 3"] }
### Chat History:
<chat_history>
${history(turns, 5)}
</chat_history>`,
  queries: (turns: readonly Turn[]) => `### Task:
Analyze the chat history to determine the necessity of generating search queries, in the given language. By default, **prioritize generating 1-3 broad and relevant search queries** unless it is absolutely certain that no additional information is required.

### Guidelines:
- Respond **EXCLUSIVELY** with a JSON object. Any form of extra commentary, explanation, or additional text is strictly prohibited.
- Today's date is: 2026-12-02.

### Output:
Strictly return in JSON format: 
{
  "queries": ["query1", "query2"]
}

### Chat History:
<chat_history>
${history(turns, 6)}
</chat_history>
`,
};

export type TaskName = keyof typeof TEMPLATES;
export const TASK_NAMES = Object.keys(TEMPLATES) as TaskName[];

/** A background task's body: one user message, not streamed, Open WebUI's default max_tokens for tasks. */
export function taskBody(task: TaskName, model: string, turns: readonly Turn[]): Record<string, unknown> {
  return { model, messages: [{ role: 'user', content: TEMPLATES[task](turns) }], stream: false, max_tokens: 1000 };
}

/** A user's chat turn as Open WebUI sends it (streamed, the whole history). */
export function chatTurnBody(model: string, turns: readonly Turn[], stream = true): Record<string, unknown> {
  return { stream, model, messages: turns.map((turn) => ({ ...turn })) };
}

/**
 * A chat turn with retrieved context: Open WebUI (RAG_SYSTEM_CONTEXT off, its default) puts its
 * RAG template, which also begins with "### Task:", in front of the user's question.
 */
export function ragChatBody(model: string, question: string, context: string): Record<string, unknown> {
  const rag = `### Task:
Respond to the user query using the provided context, incorporating inline citations in the format [id] **only when the <source> tag includes an explicit id attribute** (e.g., <source id="1">).

### Guidelines:
- If you don't know the answer, clearly state that.

<context>
<source id="1">${context}</source>
</context>
`;
  return { stream: true, model, messages: [{ role: 'user', content: `${rag}\n${question}` }] };
}
