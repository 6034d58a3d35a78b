;;; companion.el --- Eglot adapter for the companion model-forensics server -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: tools, languages

;;; Commentary:

;; Thin client for `companion serve' (training-log evidence, weight audits, architecture
;; insight, grounded chat).  Usage:
;;
;;   (require 'companion)
;;   (setq companion-llm-base-url "http://127.0.0.1:11434/v1" companion-llm-model "qwen3")
;;   (companion-setup)
;;
;; Model configs, safetensors index files, training logs and *.chat.md files then open in
;; companion modes managed by eglot.  Commands: `companion-chat' (streaming chat buffer),
;; `companion-chat-stop', `companion-chat-new', `companion-evidence', `companion-audit',
;; `companion-query'.  The API key stays in your environment (see `companion-llm-api-key-env').
;; Eglot 1.9 has no $/progress support, so this file handles progress itself.

;;; Code:

(require 'cl-lib)
(require 'eglot)
(require 'jsonrpc)
(require 'subr-x)

(defgroup companion nil "Model-forensics companion language server." :group 'tools)

(defcustom companion-server-command '("companion" "serve")
  "Command line that starts the server (used when `companion-python' is nil)."
  :type '(repeat string))

(defcustom companion-python nil
  "Python interpreter with companion installed; runs `python -m companion serve'."
  :type '(choice (const nil) string))

(defcustom companion-llm-base-url nil "OpenAI-compatible endpoint URL." :type '(choice (const nil) string))
(defcustom companion-llm-model nil "Model served by the endpoint." :type '(choice (const nil) string))
(defcustom companion-llm-api-key-env nil
  "Name of the environment variable holding the API key.
The server's default is OPENAI_API_KEY.  The key stays in the environment."
  :type '(choice (const nil) string))

(defcustom companion-request-timeout 3600
  "Seconds before an unanswered chat or tool request is abandoned."
  :type 'integer)

(defcustom companion-auto-mode-patterns
  '(("/config\\.json\\'" . companion-config-mode)
    ("\\.safetensors\\.index\\.json\\'" . companion-config-mode)
    ("/trainer_state\\.json\\'" . companion-config-mode)
    ("/wandb-summary\\.json\\'" . companion-config-mode)
    ("\\.chat\\.md\\'" . companion-chat-mode)
    ("\\.log\\'" . companion-log-mode))
  "File name patterns that `companion-setup' adds to `auto-mode-alist'."
  :type '(alist :key-type regexp :value-type function))

(define-derived-mode companion-config-mode js-mode "Companion-Config"
  "Model config / safetensors index files, managed by the companion server.")
(define-derived-mode companion-log-mode text-mode "Companion-Log"
  "Training logs, managed by the companion server.")
(define-derived-mode companion-chat-mode text-mode "Companion-Chat"
  "`*.chat.md' files: use `eglot-code-actions' → \"Ask companion\".")

(defclass companion-eglot-server (eglot-lsp-server) ()
  :documentation "Eglot connection to `companion serve'.")

(defun companion--settings ()
  "Server settings from the customizations (nested, as the server accepts them)."
  (let (llm)
    (when companion-llm-api-key-env (setq llm (plist-put llm :apiKeyEnv companion-llm-api-key-env)))
    (when companion-llm-model (setq llm (plist-put llm :model companion-llm-model)))
    (when companion-llm-base-url (setq llm (plist-put llm :baseUrl companion-llm-base-url)))
    (if llm (list :llm llm) eglot--{})))

(defun companion--command ()
  "The server command line."
  (if companion-python (list companion-python "-m" "companion" "serve") companion-server-command))

(defun companion--contact (&rest _)
  "Eglot contact: our server class and command."
  (cons 'companion-eglot-server (companion--command)))

(defconst companion--modes '(companion-config-mode companion-log-mode companion-chat-mode))

(cl-defmethod eglot-initialization-options ((_ companion-eglot-server))
  (companion--settings))

(cl-defmethod eglot-client-capabilities :around ((_ companion-eglot-server))
  (append (cl-call-next-method) (list :window '(:workDoneProgress t :showDocument (:support t)))))

(cl-defmethod eglot-handle-request
  ((_ companion-eglot-server) (_method (eql window/workDoneProgress/create)) &key _token)
  nil)

(cl-defmethod eglot-handle-request
  ((_ companion-eglot-server) (_method (eql window/showDocument)) &key uri &allow-other-keys)
  (companion--open-uri uri)
  (list :success t))

(cl-defmethod eglot-handle-request
  ((_ companion-eglot-server) (_method (eql workspace/applyEdit)) &key _label edit)
  ;; "Ask companion" streams its answer into a *.chat.md as many small edits: apply them
  ;; without one confirmation prompt per edit.
  (eglot--apply-workspace-edit edit nil)
  (list :applied t))

(defvar companion--streams (make-hash-table :test #'equal)
  "workDoneToken -> function receiving each $/progress value of a chat turn.")

(cl-defmethod eglot-handle-notification
  ((_ companion-eglot-server) (_method (eql $/progress)) &key token value)
  (let ((stream (gethash token companion--streams)))
    (cond (stream (funcall stream value))
          ((plist-get value :message)
           (let ((pct (plist-get value :percentage)))
             (message "companion: %s%s" (plist-get value :message) (if pct (format " (%s%%)" pct) "")))))))

(defun companion--open-uri (uri)
  "Show the file at URI in another window."
  (let ((path (eglot--uri-to-path uri)))
    (unless (get-buffer-window (get-file-buffer path))
      (find-file-other-window path))))

;;;###autoload
(defun companion-setup ()
  "Register the server with eglot and map companion files to their modes.
Eglot then starts in those buffers."
  (interactive)
  (add-to-list 'eglot-server-programs (cons companion--modes #'companion--contact))
  (dolist (entry companion-auto-mode-patterns) (add-to-list 'auto-mode-alist entry))
  (add-hook 'eglot-connect-hook #'companion-update-settings 'append)
  (dolist (mode companion--modes) (add-hook (intern (format "%s-hook" mode)) #'eglot-ensure)))

(defun companion-update-settings (&optional server)
  "Send the current customizations to SERVER (default: every companion one).
Also runs after eglot's own empty workspace/didChangeConfiguration,
which would otherwise reset the settings sent as initializationOptions."
  (interactive)
  (dolist (s (if server (list server) (companion--servers)))
    (when (cl-typep s 'companion-eglot-server)
      (jsonrpc-notify s :workspace/didChangeConfiguration (list :settings (companion--settings))))))

(defun companion-start ()
  "Connect the current buffer to the companion server now.
Unlike `eglot-ensure', which waits for the next command (so also in batch)."
  (interactive)
  (unless (eglot-current-server) (apply #'eglot--connect (eglot--guess-contact))))

(defun companion--servers ()
  "Running companion servers."
  (cl-loop for servers being the hash-values of eglot--servers-by-project
           append (cl-remove-if-not (lambda (s) (and (cl-typep s 'companion-eglot-server) (jsonrpc-running-p s)))
                                    servers)))

(defun companion--server ()
  "The companion server for the current buffer, or any running one."
  (or (let ((s (eglot-current-server))) (and (cl-typep s 'companion-eglot-server) s))
      (car (companion--servers))
      (user-error "No companion server: open a config.json, training log or *.chat.md first")))

(defun companion--request (server method params on-success &optional on-error)
  "Send METHOD with PARAMS to SERVER asynchronously; return the request id.
ON-SUCCESS gets the result, ON-ERROR the error.
The id is what $/cancelRequest needs."
  (car (jsonrpc--async-request-1
        server method params
        :success-fn on-success
        :error-fn (or on-error (jsonrpc-lambda (&key message &allow-other-keys)
                                 (message "companion: %s" message)))
        :timeout companion-request-timeout
        :timeout-fn (lambda () (message "companion: %s timed out" method)))))

(defun companion--show (tool args title)
  "Run TOOL with ARGS on the server (`companion.show') and open its result.
TITLE names the markdown document the server writes."
  (let ((server (companion--server)))
    (message "companion: running %s..." tool)
    (companion--request
     server :workspace/executeCommand
     (list :command "companion.show" :arguments (vector (list :tool tool :args args :title title)))
     (lambda (result) (companion--open-uri (plist-get result :uri)))
     (jsonrpc-lambda (&key message &allow-other-keys) (message "companion: %s: %s" title message)))))

;;;###autoload
(defun companion-evidence (paths)
  "Summarize training-log evidence for PATHS (default: the current file)."
  (interactive (list (list (if (and buffer-file-name (not current-prefix-arg))
                               buffer-file-name
                             (read-file-name "Training log or run directory: ")))))
  (companion--show "evidence.summarize" (list :paths (vconcat (mapcar #'expand-file-name paths)))
                   "Training-log evidence"))

;;;###autoload
(defun companion-audit (a b)
  "Audit checkpoint B against checkpoint A (was B derived from A?)."
  (interactive (list (read-file-name "Checkpoint A (suspected base): ")
                     (read-file-name "Checkpoint B (suspect): ")))
  (let ((a (expand-file-name a)) (b (expand-file-name b)))
    (companion--show "audit.compare" (list :a a :b b) (format "Audit %s vs %s" a b))))

(defun companion-parse-query (text)
  "Turn `llama verdict=derived' into audit.query arguments (bare words are models)."
  (let (args)
    (dolist (word (split-string text nil t))
      (let* ((eq (string-match "=" word))
             (key (intern (concat ":" (if (and eq (> eq 0)) (substring word 0 eq) "model"))))
             (value (if (and eq (> eq 0)) (substring word (1+ eq)) word))
             (old (plist-get args key)))
        (setq args (plist-put args key (if old (concat old "," value) value)))))
    (or args eglot--{})))

;;;###autoload
(defun companion-query (text)
  "Query recorded audit results.
TEXT holds models and filters, like `llama verdict=derived where=pearson>0.5'."
  (interactive "sQuery (models and key=value filters): ")
  (companion--show "audit.query" (companion-parse-query text) "Audit results"))

;;; Chat buffer

(defvar companion-chat--conversation nil "Conversation id the server gave us.")
(defvar companion-chat--current nil "The streaming turn: plist (:server :id :token :stopped :text).")
(defvar companion-chat--seq 0)

(define-derived-mode companion-chat-buffer-mode text-mode "Companion-Chat"
  "The *companion-chat* buffer: RET asks, C-c C-k stops the streaming answer.")
(define-key companion-chat-buffer-mode-map (kbd "RET") #'companion-chat)
(define-key companion-chat-buffer-mode-map (kbd "C-c C-k") #'companion-chat-stop)

(defun companion-chat--buffer ()
  "The chat buffer, created on demand and shown."
  (let ((buf (get-buffer-create "*companion-chat*")))
    (with-current-buffer buf
      (unless (derived-mode-p 'companion-chat-buffer-mode) (companion-chat-buffer-mode)))
    (unless (get-buffer-window buf) (display-buffer buf))
    buf))

(defun companion-chat--append (text)
  "Append TEXT at the end of the chat buffer."
  (with-current-buffer (companion-chat--buffer)
    (save-excursion (goto-char (point-max)) (insert text))
    (let ((win (get-buffer-window (current-buffer))))
      (when win (set-window-point win (point-max))))))

(defun companion-chat--footer (result)
  "Usage, tools and notes of a RESULT as one line."
  (let ((parts nil) (total (plist-get (plist-get result :usage) :totalTokens)))
    (when total (push (format "%s tokens" total) parts))
    (let ((tools (delq nil (mapcar (lambda (c) (plist-get c :name)) (plist-get result :toolCalls)))))
      (when tools (push (concat "tools: " (string-join tools ", ")) parts)))
    (dolist (n (append (plist-get result :notes) nil)) (push (format "%s" n) parts))
    (string-join (nreverse parts) " · ")))

(defun companion-chat--finish (turn line)
  "End TURN, writing LINE under the answer."
  (remhash (plist-get turn :token) companion--streams)
  (when (eq companion-chat--current turn) (setq companion-chat--current nil))
  (companion-chat--append (concat "\n\n" line "\n\n")))

;;;###autoload
(defun companion-chat (message)
  "Ask MESSAGE; the answer streams into the *companion-chat* buffer."
  (interactive "sAsk companion: ")
  (when companion-chat--current (user-error "A turn is still streaming (companion-chat-stop)"))
  (let* ((server (companion--server))
         ;; The server reads only files inside the workspace, so others are not sent as context.
         (root (expand-file-name (project-root (eglot--project server))))
         (origin (and buffer-file-name (string-prefix-p root (expand-file-name buffer-file-name))
                      (eglot--path-to-uri buffer-file-name)))
         (token (format "companion-emacs-%d-%d" (emacs-pid) (cl-incf companion-chat--seq)))
         (turn (list :server server :token token :stopped nil :text ""))
         (params (list :message message :workDoneToken token)))
    (when companion-chat--conversation (setq params (plist-put params :conversationId companion-chat--conversation)))
    (when origin (setq params (plist-put params :context (list :uri origin))))
    (companion-chat--append
     (concat (if (> (buffer-size (companion-chat--buffer)) 0) "\n" "")
             "## You\n\n" message "\n\n## Companion\n\n"))
    (puthash token
             (lambda (value)
               (let ((delta (plist-get value :delta)) (status (plist-get value :message)))
                 (when (and (equal (plist-get value :kind) "report") (not (plist-get turn :stopped)))
                   (cond ((stringp delta)
                          (setq turn (plist-put turn :text (concat (plist-get turn :text) delta)))
                          (companion-chat--append delta))
                         ((stringp status) (message "companion: %s" status))))))
             companion--streams)
    (setq companion-chat--current turn)
    (setq turn (plist-put turn :id
                          (companion--request
                           server :companion/chat params
                           (lambda (result)
                             (unless (plist-get turn :stopped)
                               (setq companion-chat--conversation
                                     (or (plist-get result :conversationId) companion-chat--conversation))
                               (when (equal (plist-get turn :text) "")
                                 (companion-chat--append (or (plist-get result :text) "")))
                               (let ((footer (companion-chat--footer result)))
                                 (companion-chat--finish turn (if (string-empty-p footer) "" (format "_%s_" footer))))))
                           (jsonrpc-lambda (&key code message &allow-other-keys)
                             (setq turn (plist-put turn :reply code))
                             (unless (plist-get turn :stopped)
                               (companion-chat--finish turn (format "_error: %s_" message)))))))
    (setq companion-chat--current turn)))

(defun companion-chat-stop ()
  "Cancel the streaming turn ($/cancelRequest); the partial answer stays."
  (interactive)
  (let ((turn companion-chat--current))
    (when turn
      (plist-put turn :stopped t)
      (jsonrpc-notify (plist-get turn :server) :$/cancelRequest (list :id (plist-get turn :id)))
      (companion-chat--finish turn "_[stopped]_")
      t)))

(defun companion-chat-new ()
  "Forget the conversation and clear the chat buffer."
  (interactive)
  (companion-chat-stop)
  (setq companion-chat--conversation nil)
  (with-current-buffer (companion-chat--buffer) (erase-buffer)))

(provide 'companion)
;;; companion.el ends here
